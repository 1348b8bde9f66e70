from ser_edge.cli import main

raise SystemExit(main())

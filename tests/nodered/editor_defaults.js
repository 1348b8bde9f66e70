// Prints {node type: {property: default value}} for every node type the Node-RED editor's
// HTML files register: what the editor writes for a node of that type (RED.nodes.registerType's
// `defaults`). Each <script> runs in a sandbox whose RED, $ and window answer anything.
// Usage: node editor_defaults.js <node_modules/@node-red/nodes>
const fs = require('fs'), path = require('path'), vm = require('vm');
const found = {};
const any = new Proxy(function () {}, {get: (t, k) => k === Symbol.toPrimitive ? () => '' : any, apply: () => any, construct: () => any});
const RED = new Proxy({}, {get: (t, k) => k === 'nodes' ? new Proxy({}, {get: (t2, k2) => k2 === 'registerType' ? (type, def) => { found[type] = Object.fromEntries(Object.entries(def.defaults || {}).map(([k, v]) => [k, v && typeof v === 'object' && 'value' in v ? v.value : null])); } : any}) : any});
function walk(dir) {
  for (const e of fs.readdirSync(dir, {withFileTypes: true})) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (p.endsWith('.html')) {
      const html = fs.readFileSync(p, 'utf8');
      for (const m of html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)) {
        try { vm.runInNewContext(m[1], {RED, $: any, jQuery: any, window: any, document: any, console: {log() {}, warn() {}}}); } catch (e) {}
      }
    }
  }
}
walk(process.argv[2]);
console.log(JSON.stringify(found));

/* What the host emulator needs beyond node.h: the size of the node's state, to allocate
 * it from Python, and its mode, to start the WAV once the Pi has configured the node. */
#include "node.h"

size_t ser_node_size(void) {
    return sizeof(struct ser_node);
}

int ser_node_mode(const struct ser_node *n) {
    return n->mode;
}

//! Services on the node (see the parent module).

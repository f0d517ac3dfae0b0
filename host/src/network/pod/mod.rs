//! The pod network (see the parent module).

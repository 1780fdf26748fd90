//! skiff-controllers (being written)

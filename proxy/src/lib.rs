//! skiff-proxy (being written)

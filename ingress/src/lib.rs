//! skiff-ingress (being written)

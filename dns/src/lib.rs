//! skiff-dns (being written)

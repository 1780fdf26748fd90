//! skiff-scheduler (being written)

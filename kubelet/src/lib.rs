//! skiff-kubelet (being written)

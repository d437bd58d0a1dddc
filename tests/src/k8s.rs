//! A real kube-apiserver + etcd for integration tests (see scripts/k8s-test-cluster).

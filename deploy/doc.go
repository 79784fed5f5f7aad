// Package deploy holds no code: it is the module of Quiver's deployment
// files (Kubernetes manifests under base/ and overlays/, Prometheus rules
// under prometheus/, a Grafana dashboard under grafana/), and its tests
// check them without a cluster or a network. It is a module of its own so
// that the Kubernetes and Prometheus libraries the tests use never enter
// the product's go.mod. Run them with make deploy-check, or cd deploy &&
// go test ./...
package deploy

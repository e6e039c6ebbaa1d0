// Package deploy holds the platform's deployment files — the container image
// (Dockerfile), the Docker Compose file, the Kubernetes manifests (k8s/) —
// and the tests that prove them consistent with the code without a Docker
// engine or a cluster: every environment variable a service reads is set or
// deliberately defaulted, and every one set is read; ports, probe paths and
// service names agree between the code, compose.yaml, the manifests and
// otel-collector.yaml; the manifests carry the required security context,
// probes, resources, disruption budgets and network policies. See README.md.
package deploy

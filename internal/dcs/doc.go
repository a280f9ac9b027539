// Package dcs is the cluster's shared state in etcd: allowed nodes,
// registrations, published member status, the coordinator election and
// cluster-wide requests, all under /pgfm/CLUSTER/.
package dcs

// Package etcdmember starts, joins and stops the etcd member that every
// agent embeds, so the agents themselves provide the cluster's consensus.
package etcdmember

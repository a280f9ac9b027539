// Package secret is the format of `pgfm encrypt`: a database password sealed with a key derived from the cluster name, against casual disclosure only.
package secret

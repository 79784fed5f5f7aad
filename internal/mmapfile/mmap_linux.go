//go:build linux

package mmapfile

import "syscall"

// mapPopulate faults the mapping in at once: a dataset is read whole.
const mapPopulate = syscall.MAP_POPULATE

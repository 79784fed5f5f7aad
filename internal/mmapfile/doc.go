// Package mmapfile maps files read-only into memory, for readers that
// serve or scan Arrow IPC files without copying them out of the page
// cache (saved datasets, compacted copies).
package mmapfile

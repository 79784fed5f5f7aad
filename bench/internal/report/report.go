// Package report prints benchmark results the same way in every program
// under bench/: each case's median over several runs beside the reference
// measured in the same run, and the ratio.
package report

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Median returns the median of ds (the mean of the middle two for an even
// count).
func Median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Run is one measured run of a case in a child process.
type Run struct {
	Elapsed time.Duration
	PeakRSS int64 // bytes
	Output  string
}

// Child runs this program again with args and returns how long the work
// took (as the child reports it on its last output line, in nanoseconds)
// and the child's peak resident memory.
func Child(args ...string) (Run, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return Run{}, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	ns, err := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
	if err != nil {
		return Run{}, fmt.Errorf("%s: last line %q is not nanoseconds", strings.Join(args, " "), lines[len(lines)-1])
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // Linux reports KiB
	}
	return Run{Elapsed: time.Duration(ns), PeakRSS: rss, Output: strings.Join(lines[:len(lines)-1], "\n")}, nil
}

// Row is one line of a result table.
type Row struct {
	Case  string
	Cells []string
}

// Table prints rows under a header, aligned.
func Table(w io.Writer, header []string, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, r.Case+"\t"+strings.Join(r.Cells, "\t")+"\t")
	}
	_ = tw.Flush()
}

// Bytes formats a byte count in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Rate formats a count per second with a k/M suffix.
func Rate(n int64, d time.Duration) string {
	r := float64(n) / d.Seconds()
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.0fk/s", r/1e3)
	}
	return fmt.Sprintf("%.0f/s", r)
}

// Seconds formats d in seconds with millisecond resolution.
func Seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

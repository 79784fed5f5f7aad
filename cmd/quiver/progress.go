package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress shows what a long command is doing on a terminal, and nothing
// when stderr is not one.
type progress struct {
	w     io.Writer
	start time.Time

	mu   sync.Mutex
	msg  string
	done chan struct{}
	wg   sync.WaitGroup
}

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startProgress starts showing msg with the elapsed time, when stderr is a
// terminal. Stop must be called.
func startProgress(stderr io.Writer, msg string) *progress {
	p := &progress{w: stderr, start: time.Now(), msg: msg}
	if !isTerminal(stderr) {
		return p
	}
	p.done = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				p.mu.Lock()
				fmt.Fprintf(p.w, "\r\033[K%s (%.1fs)", p.msg, time.Since(p.start).Seconds())
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// Set changes the message.
func (p *progress) Set(msg string) {
	p.mu.Lock()
	p.msg = msg
	p.mu.Unlock()
}

// Stop clears the line and returns the time since the start.
func (p *progress) Stop() time.Duration {
	if p.done != nil {
		close(p.done)
		p.wg.Wait()
		p.done = nil
	}
	return time.Since(p.start)
}

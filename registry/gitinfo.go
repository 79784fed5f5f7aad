package registry

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"strings"
)

// GitInfo describes the Git work tree a repository directory is in.
type GitInfo struct {
	Commit string // HEAD, empty when dir is not in a Git work tree
	Dirty  bool   // uncommitted changes under dir (only with a Commit)
	Author string // user.name <user.email> from Git's configuration
}

// ReadGitInfo asks git about dir. It returns a zero GitInfo when git is
// missing or dir is not in a work tree.
func ReadGitInfo(ctx context.Context, dir string) GitInfo {
	git := func(args ...string) (string, bool) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	var info GitInfo
	if inside, ok := git("rev-parse", "--is-inside-work-tree"); !ok || inside != "true" {
		return info
	}
	if c, ok := git("rev-parse", "HEAD"); ok {
		info.Commit = c
	}
	if info.Commit != "" {
		// Without a commit there is nothing to differ from.
		if st, ok := git("status", "--porcelain", "--", "."); ok && st != "" {
			info.Dirty = true
		}
	}
	name, _ := git("config", "user.name")
	email, _ := git("config", "user.email")
	switch {
	case name != "" && email != "":
		info.Author = name + " <" + email + ">"
	case name != "":
		info.Author = name
	default:
		info.Author = email
	}
	return info
}

// DefaultAuthor names who applies: $QUIVER_AUTHOR, else Git's user, else
// the operating-system user.
func DefaultAuthor(git GitInfo) string {
	if a := os.Getenv("QUIVER_AUTHOR"); a != "" {
		return a
	}
	if git.Author != "" {
		return git.Author
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

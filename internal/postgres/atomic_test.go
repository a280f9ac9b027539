package postgres

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The data directory's owner may plant links in it: writing a file there
// replaces the link, and neither writes nor chowns what it names.
func TestWriteFileAtomicNeverFollowsLinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(victim)
	s := Server{DataDir: dir, Owner: "nobody"}
	path := filepath.Join(dir, "postgresql.auto.conf")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := s.writeFileAtomic(path, []byte("x = 1\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	after, _ := os.Stat(victim)
	if after.Sys().(*syscall.Stat_t).Uid != before.Sys().(*syscall.Stat_t).Uid {
		t.Error("the link's target changed owner")
	}
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Fatalf("path is %v (%v), want a regular file of mode 0600", st.Mode(), err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x = 1\n" {
		t.Errorf("content %q", b)
	}
	// chownToOwner on a link changes the link, never its target.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := s.chownToOwner(link); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	after, _ = os.Stat(victim)
	if after.Sys().(*syscall.Stat_t).Uid != before.Sys().(*syscall.Stat_t).Uid {
		t.Error("chownToOwner followed a link")
	}
	if os.Geteuid() == 0 {
		st, _ := os.Stat(path)
		if st.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Error("a new file was not given to the owner")
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.pgfm.tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

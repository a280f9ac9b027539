package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// replaceFile never writes through a link planted at the path, and leaves
// no temporary file behind.
func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	path, victim := filepath.Join(dir, "followed-epoch"), filepath.Join(dir, "victim")
	writeT(t, victim, "precious\n", 0o644)
	symlinkT(t, victim, path)

	if err := replaceFile(path, []byte("7\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("written through the link: the victim holds %q", b)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v (%v), want a regular file, 0600", path, fi.Mode(), err)
	}
	if b, _ := os.ReadFile(path); string(b) != "7\n" {
		t.Errorf("holds %q", b)
	}
	if err := replaceFile(path, []byte("8\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "8\n" {
		t.Errorf("holds %q", b)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 2 {
		t.Errorf("files left: %v", names)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, ".*")); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}

	if err := replaceFile(filepath.Join(dir, "missing", "x"), []byte("1\n")); err == nil {
		t.Error("no error for a missing directory")
	}
}

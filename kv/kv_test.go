package kv

import (
	"errors"
	"testing"
)

func TestOpenTwiceIsLocked(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
	var le *LockedError
	if !errors.As(err, &le) || le.Dir != dir {
		t.Fatalf("error does not name the directory: %v", err)
	}
}

package postgres

import (
	"bytes"
	"testing"
)

func TestTailBufferKeepsTheEnd(t *testing.T) {
	var b tailBuffer
	b.Write(bytes.Repeat([]byte("a"), maxOutput))
	b.Write([]byte("the end"))
	if len(b.b) != maxOutput || !bytes.HasSuffix(b.b, []byte("the end")) {
		t.Fatalf("kept %d bytes ending %q", len(b.b), b.b[len(b.b)-10:])
	}
}

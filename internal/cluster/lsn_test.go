package cluster

import (
	"encoding/json"
	"testing"
)

func TestLSNRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		text string
		want LSN
	}{
		{"0/0", 0},
		{"0/3000060", 0x3000060},
		{"16/B374D848", 0x16B374D848},
		{"FFFFFFFF/FFFFFFFF", 0xFFFFFFFFFFFFFFFF},
	} {
		got, err := ParseLSN(tc.text)
		if err != nil || got != tc.want {
			t.Fatalf("ParseLSN(%q) = %v, %v; want %v", tc.text, got, err, tc.want)
		}
		if tc.want != 0 && got.String() != tc.text {
			t.Fatalf("String() = %q, want %q", got.String(), tc.text)
		}
	}
	for _, bad := range []string{"", "3000060", "x/1", "1/x", "100000000/0"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Fatalf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestLSNJSON(t *testing.T) {
	b, err := json.Marshal(struct{ L LSN }{0x3000060})
	if err != nil || string(b) != `{"L":"0/3000060"}` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var v struct{ L LSN }
	if err := json.Unmarshal([]byte(`{"L":"1/2"}`), &v); err != nil || v.L != 0x100000002 {
		t.Fatalf("unmarshal = %v, %v", v.L, err)
	}
	if err := json.Unmarshal([]byte(`{"L":"junk"}`), &v); err == nil {
		t.Fatal("unmarshal of junk accepted")
	}
}

package postgres

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestParseConninfo(t *testing.T) {
	tests := []struct {
		in    string
		want  map[string]string
		order []string
	}{
		{"", map[string]string{}, nil},
		{"   ", map[string]string{}, nil},
		{"host=a port=5432", map[string]string{"host": "a", "port": "5432"}, []string{"host", "port"}},
		{" host = a\tport= 5432\n", map[string]string{"host": "a", "port": "5432"}, []string{"host", "port"}},
		{"host='a b' user=''", map[string]string{"host": "a b", "user": ""}, []string{"host", "user"}},
		{`password='it\'s' dir='c:\\x'`, map[string]string{"password": "it's", "dir": `c:\x`}, []string{"password", "dir"}},
		{`password=a\ b`, map[string]string{"password": "a b"}, []string{"password"}},
		{`password=ab\`, map[string]string{"password": "ab"}, []string{"password"}},
		{"host=a host=b port=1", map[string]string{"host": "b", "port": "1"}, []string{"host", "port"}},
		// libpq takes the next word as the value after an "=" and spaces.
		{"host= port=1", map[string]string{"host": "port=1"}, []string{"host"}},
		{"options='-c a=b'", map[string]string{"options": "-c a=b"}, []string{"options"}},
		{"host=[::1]", map[string]string{"host": "[::1]"}, []string{"host"}},
		// What pg_basebackup -R writes.
		{`user=postgres passfile='/root/.pgpass' channel_binding=prefer host=127.0.0.2 port=5432 sslmode=disable application_name=node1`,
			map[string]string{"user": "postgres", "passfile": "/root/.pgpass", "channel_binding": "prefer",
				"host": "127.0.0.2", "port": "5432", "sslmode": "disable", "application_name": "node1"},
			[]string{"user", "passfile", "channel_binding", "host", "port", "sslmode", "application_name"}},
	}
	for _, tt := range tests {
		got, order, err := ParseConninfo(tt.in)
		if err != nil {
			t.Errorf("ParseConninfo(%q): %v", tt.in, err)
			continue
		}
		if !maps.Equal(got, tt.want) || !slices.Equal(order, tt.order) {
			t.Errorf("ParseConninfo(%q) = %q %q, want %q %q", tt.in, got, order, tt.want, tt.order)
		}
	}
}

func TestParseConninfoErrors(t *testing.T) {
	for _, in := range []string{
		"host",
		"host a",
		"=a",
		"host='a",
		`host='a\'`,
		"postgresql://u@h/db",
		"  postgres://h",
	} {
		if got, _, err := ParseConninfo(in); err == nil {
			t.Errorf("ParseConninfo(%q) = %q, want an error", in, got)
		}
	}
	if _, _, err := ParseConninfo("postgresql://h"); !errors.Is(err, ErrConninfoURI) {
		t.Errorf("URI: %v, want ErrConninfoURI", err)
	}
}

func TestFormatConninfo(t *testing.T) {
	v := map[string]string{"host": "h", "port": "1", "password": `it's \x`, "a": "", "z": "z"}
	got := FormatConninfo(v, []string{"port", "missing", "host", "port"})
	want := `port='1' host='h' a='' password='it\'s \\x' z='z'`
	if got != want {
		t.Fatalf("FormatConninfo = %s\nwant             %s", got, want)
	}
	back, _, err := ParseConninfo(got)
	if err != nil || !maps.Equal(back, v) {
		t.Fatalf("round trip: %q, %v; want %q", back, err, v)
	}
}

func TestFollowConninfo(t *testing.T) {
	tests := []struct {
		name, existing  string
		host            string
		port            int
		user, app, want string
	}{
		{"empty", "", "10.0.0.2", 5432, "repl", "node1",
			"host='10.0.0.2' port='5432' user='repl' application_name='node1'"},
		{"keeps other keywords in place", "user=postgres passfile='/x/.pgpass' host=a port=1 sslmode=require application_name=n",
			"b", 2, "", "",
			"user='postgres' passfile='/x/.pgpass' host='b' port='2' sslmode='require' application_name='n'"},
		{"replaces user and name", "host=a user=old application_name=old", "b", 0, "new", "n2",
			"host='b' user='new' application_name='n2'"},
		{"drops hostaddr", "hostaddr=10.0.0.1 host=a port=1", "b", 3, "", "",
			"host='b' port='3'"},
	}
	for _, tt := range tests {
		got, err := followConninfo(tt.existing, tt.host, tt.port, tt.user, tt.app)
		if err != nil || got != tt.want {
			t.Errorf("%s: followConninfo = %s, %v\nwant %s", tt.name, got, err, tt.want)
		}
	}
	if _, err := followConninfo("host='a", "b", 1, "", ""); err == nil {
		t.Error("unparseable conninfo: want an error")
	}
}

func FuzzParseConninfo(f *testing.F) {
	for _, s := range []string{"", "host=a port=1", `a='b\'c' d=e\ f`, "a= b", "x='", `y=\`, "=", "postgresql://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, order, err := ParseConninfo(s)
		if err != nil {
			return
		}
		if len(order) != len(v) {
			t.Fatalf("%d keys in order, %d values", len(order), len(v))
		}
		// What we format parses back to the same values.
		back, _, err := ParseConninfo(FormatConninfo(v, order))
		if err != nil || !maps.Equal(back, v) {
			t.Fatalf("round trip of %q: %q, %v", v, back, err)
		}
	})
}

package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadDCS is loadString for the dcs.* keys: the directory also holds
// ca.pem, client.pem, client-key.pem and a subdirectory dir, and DIR in
// props stands for it. Problems and warnings come back as exact strings
// with the directory written DIR again.
func loadDCS(t *testing.T, props string, mode os.FileMode) (Config, []string, []string) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "client.pem", "client-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("-----BEGIN TEST-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.properties")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(props, "DIR", dir)), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, mode); err != nil { // WriteFile's mode is subject to the umask
		t.Fatal(err)
	}
	c, warns, err := Load(dir, "c")
	var errs, ws []string
	if err != nil {
		errs = strings.Split(strings.ReplaceAll(err.Error(), dir, "DIR"), "\n")
	}
	for _, w := range warns {
		ws = append(ws, strings.ReplaceAll(w.String(), dir, "DIR"))
	}
	return c, errs, ws
}

const endpointsHowMsg = "write the etcd client URLs separated by commas, e.g. " +
	"https://etcd1.example.com:2379,https://etcd2.example.com:2379 or 192.0.2.31:2379,[fd00::31]:2379"

const passwordModeWarning = "DIR/c.properties:%d: dcs.password: the file holds a password but its group or others may " +
	"read or write it (mode 0644); make it readable only by the agent's user: chmod 600 DIR/c.properties"

// dcsCases cover the external etcd keys: every problem and warning is given
// in full, in order, and the DCSConfig built when there is none.
var dcsCases = []struct {
	name   string
	props  string
	errors []string
	warns  []string
	want   DCSConfig // checked when errors is empty
}{
	// Valid endpoints and their normal form.
	{name: "host:port, IPv4 and IPv6 are http by default",
		props: conf("dcs.endpoints=etcd1.example.com:2379, 192.0.2.31:2379 ,[fd00::31]:2379"),
		want:  DCSConfig{Endpoints: []string{"http://etcd1.example.com:2379", "http://192.0.2.31:2379", "http://[fd00::31]:2379"}}},
	{name: "https by default with dcs.cacert",
		props: conf("dcs.endpoints=etcd1:2379,[::1]:2379", "dcs.cacert=DIR/ca.pem"),
		want:  DCSConfig{Endpoints: []string{"https://etcd1:2379", "https://[::1]:2379"}, CACert: "DIR/ca.pem"}},
	{name: "https by default with a client certificate alone",
		props: conf("dcs.endpoints=etcd1:2379", "dcs.cert=DIR/client.pem", "dcs.key=DIR/client-key.pem"),
		want:  DCSConfig{Endpoints: []string{"https://etcd1:2379"}, Cert: "DIR/client.pem", Key: "DIR/client-key.pem"}},
	{name: "schemes, hosts and addresses normalised",
		props: conf("dcs.endpoints=HTTPS://Etcd1.Example.com:2379,https://[::1]:2379,https://[FD00:0::1]:02379,https://[::ffff:192.0.2.1]:2379"),
		want: DCSConfig{Endpoints: []string{"https://etcd1.example.com:2379", "https://[::1]:2379", "https://[fd00::1]:2379",
			"https://192.0.2.1:2379"}}},
	{name: "explicit http", props: conf("dcs.endpoints=http://192.0.2.31:2379,http://192.0.2.32:2379"),
		want: DCSConfig{Endpoints: []string{"http://192.0.2.31:2379", "http://192.0.2.32:2379"}}},
	{name: "everything set", props: conf("dcs.endpoints=https://etcd1:2379,etcd2:2379", "dcs.cacert=DIR/ca.pem",
		"dcs.cert=DIR/client.pem", "dcs.key=DIR/client-key.pem", "dcs.user=pgfm-main", `dcs.password=s3cret\\x `),
		warns: []string{fmt.Sprintf(passwordModeWarning, 11)},
		want: DCSConfig{Endpoints: []string{"https://etcd1:2379", "https://etcd2:2379"}, CACert: "DIR/ca.pem",
			Cert: "DIR/client.pem", Key: "DIR/client-key.pem", User: "pgfm-main", Password: `s3cret\x`}},
	{name: "blank dcs keys are unset", props: conf("dcs.endpoints=", "dcs.cacert=", "dcs.cert= ", "dcs.key=", "dcs.user=", "dcs.password=")},

	// Invalid endpoints.
	{name: "empty entry", props: conf("dcs.endpoints=etcd1:2379,,etcd2:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: endpoint 2 of 3 is empty; separate the endpoints with single commas, with none at either end; " + endpointsHowMsg}},
	{name: "trailing comma", props: conf("dcs.endpoints=etcd1:2379,"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: endpoint 2 of 2 is empty; separate the endpoints with single commas, with none at either end; " + endpointsHowMsg}},
	{name: "separated by blanks", props: conf("dcs.endpoints=etcd1:2379 etcd2:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1:2379 etcd2:2379" has a blank in it; separate the endpoints with commas, not blanks; ` + endpointsHowMsg}},
	{name: "missing port", props: conf("dcs.endpoints=etcd1"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1" has no port; add etcd's client port, e.g. etcd1:2379`}},
	{name: "missing port after scheme", props: conf("dcs.endpoints=https://etcd1"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "https://etcd1" has no port; add etcd's client port, e.g. https://etcd1:2379`}},
	{name: "missing port after IPv6", props: conf("dcs.endpoints=[fd00::31]"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "[fd00::31]" has no port; add etcd's client port, e.g. [fd00::31]:2379`}},
	{name: "empty port", props: conf("dcs.endpoints=etcd1:"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1:": port "" is not a number in 1..65535; etcd's client port is usually 2379`}},
	{name: "IPv6 without brackets", props: conf("dcs.endpoints=fd00::31:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "fd00::31:2379": put an IPv6 address in brackets, followed by the port, e.g. [fd00::31]:2379 or https://[fd00::31]:2379`}},
	{name: "path", props: conf("dcs.endpoints=https://etcd1:2379/v3"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "https://etcd1:2379/v3" has a path ("/v3"); an endpoint is only [http:// or https://]host:port: write https://etcd1:2379`}},
	{name: "trailing slash", props: conf("dcs.endpoints=etcd1:2379/"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1:2379/" has a path ("/"); an endpoint is only [http:// or https://]host:port: write etcd1:2379`}},
	{name: "query", props: conf("dcs.endpoints=http://etcd1:2379?x=1"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "http://etcd1:2379?x=1" has a path ("?x=1"); an endpoint is only [http:// or https://]host:port: write http://etcd1:2379`}},
	{name: "unix socket", props: conf("dcs.endpoints=unix:///run/etcd.sock"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "unix:///run/etcd.sock" has the scheme "unix://"; use http:// or https://, or leave the scheme out (etcd's gRPC endpoints are http or https URLs)`}},
	{name: "unknown scheme", props: conf("dcs.endpoints=grpc://etcd1:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "grpc://etcd1:2379" has the scheme "grpc://"; use http:// or https://, or leave the scheme out (etcd's gRPC endpoints are http or https URLs)`}},
	{name: "credentials in the URL are not echoed", props: conf("dcs.endpoints=etcd1:2379,https://root:hunter2@etcd2:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: endpoint 2 has a user name or password in it (before @); remove it and set dcs.user and dcs.password instead"}},
	{name: "credentials with a blank are not echoed", props: conf("dcs.endpoints=https://root:hunter2@etcd1:2379 etcd2:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: endpoint 1 has a user name or password in it (before @); remove it and set dcs.user and dcs.password instead"}},
	{name: "http and https mixed", props: conf("dcs.endpoints=http://etcd1:2379,https://etcd2:2379,http://etcd3:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: mixes http:// (http://etcd1:2379) and https:// (https://etcd2:2379); the etcd client uses one TLS setting for all endpoints: write the same scheme on every one"}},
	{name: "port not a number", props: conf("dcs.endpoints=etcd1:client"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1:client": port "client" is not a number in 1..65535; etcd's client port is usually 2379`}},
	{name: "port zero", props: conf("dcs.endpoints=etcd1:0"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1:0": port 0 is outside 1..65535; etcd's client port is usually 2379`}},
	{name: "port too large", props: conf("dcs.endpoints=etcd1:65536"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1:65536": port 65536 is outside 1..65535; etcd's client port is usually 2379`}},
	{name: "no host", props: conf("dcs.endpoints=:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: ":2379" has no host; write the etcd member's host name or IP address before the port, e.g. etcd1.example.com:2379`}},
	{name: "zone", props: conf("dcs.endpoints=[fe80::1%eth0]:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "[fe80::1%eth0]:2379": fe80::1%eth0 has a zone index (%eth0), which an etcd URL cannot carry; use a global or unique-local (fd00::/8) address`}},
	{name: "unspecified", props: conf("dcs.endpoints=0.0.0.0:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "0.0.0.0:2379": 0.0.0.0 is the unspecified address; write an etcd member's own address`}},
	{name: "multicast", props: conf("dcs.endpoints=[ff02::1]:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "[ff02::1]:2379": ff02::1 is a multicast address; write an etcd member's own address`}},
	{name: "bad IPv4", props: conf("dcs.endpoints=192.0.2.300:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "192.0.2.300:2379": "192.0.2.300" is neither an IP address nor a host name; ` + endpointsHowMsg}},
	{name: "bad host name", props: conf("dcs.endpoints=etcd..example.com:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd..example.com:2379": "etcd..example.com" is neither an IP address nor a host name; ` + endpointsHowMsg}},
	{name: "bad IPv6 in brackets", props: conf("dcs.endpoints=[fd00::zz]:2379"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "[fd00::zz]:2379": "fd00::zz" is neither an IP address nor a host name; ` + endpointsHowMsg}},
	{name: "listed twice", props: conf("dcs.endpoints=etcd1:2379,etcd1:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: etcd1:2379 is listed twice; list each etcd member once"}},
	{name: "the same endpoint written twice", props: conf("dcs.endpoints=etcd1:2379,http://ETCD1:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: etcd1:2379 and http://ETCD1:2379 are the same endpoint; list each etcd member once"}},
	{name: "no scheme with https and no TLS file", props: conf("dcs.endpoints=https://etcd1:2379,etcd2:2379"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: etcd2:2379 has no scheme, so it is http:// (no dcs.cacert, dcs.cert or dcs.key is set), but https://etcd1:2379 is https://; write https:// on every endpoint, or set dcs.cacert"}},

	// TLS files.
	{name: "cacert with http", props: conf("dcs.endpoints=http://etcd1:2379", "dcs.cacert=DIR/ca.pem"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: http://etcd1:2379 is plain http://, but dcs.cacert asks for TLS; write https:// or leave the scheme out (it is then https://), or remove dcs.cacert"}},
	{name: "client certificate with http", props: conf("dcs.endpoints=etcd1:2379,http://etcd2:2379", "dcs.cert=DIR/client.pem", "dcs.key=DIR/client-key.pem"), errors: []string{
		"DIR/c.properties:6: dcs.endpoints: http://etcd2:2379 is plain http://, but dcs.cert and dcs.key ask for TLS; write https:// or leave the scheme out (it is then https://), or remove dcs.cert and dcs.key"}},
	{name: "cert without key", props: conf("dcs.endpoints=etcd1:2379", "dcs.cacert=DIR/ca.pem", "dcs.cert=DIR/client.pem"), errors: []string{
		"DIR/c.properties:8: dcs.cert: is set but dcs.key is not; add dcs.key=PATH, the private key (PEM) of this client certificate, e.g. dcs.key=/etc/pgfm/etcd-client-key.pem, or remove dcs.cert"}},
	{name: "key without cert", props: conf("dcs.endpoints=etcd1:2379", "dcs.key=DIR/client-key.pem"), errors: []string{
		"DIR/c.properties:7: dcs.key: is set but dcs.cert is not; add dcs.cert=PATH, the client certificate (PEM) of this private key, e.g. dcs.cert=/etc/pgfm/etcd-client.pem, or remove dcs.key"}},
	{name: "relative path", props: conf("dcs.endpoints=etcd1:2379", "dcs.cacert=ca.pem"), errors: []string{
		`DIR/c.properties:7: dcs.cacert: "ca.pem" is not an absolute path; write the full path starting with /`}},
	{name: "missing files", props: conf("dcs.endpoints=etcd1:2379", "dcs.cacert=DIR/nope.pem", "dcs.cert=DIR/nope-client.pem", "dcs.key=DIR/nope-key.pem"), errors: []string{
		"DIR/c.properties:7: dcs.cacert: DIR/nope.pem does not exist; give the path of the CA certificate (PEM) that signed the etcd servers' certificates",
		"DIR/c.properties:8: dcs.cert: DIR/nope-client.pem does not exist; give the path of this agent's etcd client certificate (PEM)",
		"DIR/c.properties:9: dcs.key: DIR/nope-key.pem does not exist; give the path of the private key (PEM) of dcs.cert"}},
	{name: "directory", props: conf("dcs.endpoints=etcd1:2379", "dcs.cacert=DIR/dir"), errors: []string{
		"DIR/c.properties:7: dcs.cacert: DIR/dir is a directory; give the path of the CA certificate (PEM) that signed the etcd servers' certificates, a file"}},

	// User and password.
	{name: "user without password", props: conf("dcs.endpoints=etcd1:2379", "dcs.user=pgfm-main"), errors: []string{
		"DIR/c.properties:7: dcs.user: is set but dcs.password is not; etcd authentication needs both: add dcs.password=PASSWORD, or remove dcs.user"}},
	{name: "password without user", props: conf("dcs.endpoints=etcd1:2379", "dcs.password=s3cret"),
		errors: []string{"DIR/c.properties:7: dcs.password: is set but dcs.user is not; add dcs.user=NAME, the etcd user pgfm logs in as, or remove dcs.password"},
		warns:  []string{fmt.Sprintf(passwordModeWarning, 7)}},

	// Keys that need dcs.endpoints.
	{name: "dcs keys without endpoints", props: conf("dcs.cacert=DIR/ca.pem", "dcs.cert=DIR/nope.pem", "dcs.key=DIR/client-key.pem", "dcs.user=u", "dcs.password=p"),
		errors: []string{
			"DIR/c.properties:6: dcs.cacert: is only used with an external etcd cluster; set dcs.endpoints to its client URLs, or remove this line (the agents' embedded etcd members need no dcs.cacert)",
			"DIR/c.properties:7: dcs.cert: is only used with an external etcd cluster; set dcs.endpoints to its client URLs, or remove this line (the agents' embedded etcd members need no dcs.cert)",
			"DIR/c.properties:8: dcs.key: is only used with an external etcd cluster; set dcs.endpoints to its client URLs, or remove this line (the agents' embedded etcd members need no dcs.key)",
			"DIR/c.properties:9: dcs.user: is only used with an external etcd cluster; set dcs.endpoints to its client URLs, or remove this line (the agents' embedded etcd members need no dcs.user)",
			"DIR/c.properties:10: dcs.password: is only used with an external etcd cluster; set dcs.endpoints to its client URLs, or remove this line (the agents' embedded etcd members need no dcs.password)"},
		warns: []string{fmt.Sprintf(passwordModeWarning, 10)}},
	{name: "dcs keys with blank endpoints", props: conf("dcs.endpoints=", "dcs.user=u"), errors: []string{
		"DIR/c.properties:7: dcs.user: is only used with an external etcd cluster; set dcs.endpoints to its client URLs, or remove this line (the agents' embedded etcd members need no dcs.user)"}},
	{name: "dcs keys with bad endpoints: one problem", props: conf("dcs.endpoints=etcd1", "dcs.cacert=DIR/ca.pem"), errors: []string{
		`DIR/c.properties:6: dcs.endpoints: "etcd1" has no port; add etcd's client port, e.g. etcd1:2379`}},

	// Timing: dcs.election.timeout is the external cluster's.
	{name: "node.timeout warning names the external etcd leader", props: conf("dcs.endpoints=etcd1:2379", "node.timeout=2"), warns: []string{
		"DIR/c.properties:7: node.timeout: 2 seconds leaves a primary 1.1s of lease after its last renewal, less than the 2s an etcd leader election " +
			"can take with dcs.election.timeout=1: when the etcd leader (a member of the external etcd cluster) fails, the primary may fence itself " +
			"and cause a failover; use node.timeout=4 or more, or a smaller election timeout on the etcd cluster (and dcs.election.timeout with it)"},
		want: DCSConfig{Endpoints: []string{"http://etcd1:2379"}}},
	{name: "node.timeout below the external etcd's minimum lease", props: conf("dcs.endpoints=etcd1:2379", "dcs.election.timeout=2", "node.timeout=2"), errors: []string{
		"DIR/c.properties:8: node.timeout: 2 seconds is too short; use 3 or more: it is the consensus lease TTL, which etcd cannot make shorter than " +
			"1.5 × its election timeout (dcs.election.timeout=2), in whole seconds"}},
	{name: "a witness is optional and allowed", props: conf("dcs.endpoints=etcd1:2379", "is.witness=true", "-db.data.dir"),
		want: DCSConfig{Endpoints: []string{"http://etcd1:2379"}}},
}

func TestDCS(t *testing.T) {
	for _, tc := range dcsCases {
		t.Run(tc.name, func(t *testing.T) {
			c, errs, warns := loadDCS(t, tc.props, 0o644)
			if !reflect.DeepEqual(errs, tc.errors) {
				t.Errorf("errors:\ngot  %q\nwant %q", errs, tc.errors)
			}
			if !reflect.DeepEqual(warns, tc.warns) {
				t.Errorf("warnings:\ngot  %q\nwant %q", warns, tc.warns)
			}
			if errs != nil {
				return
			}
			got := c.DCS
			got.CACert, got.Cert, got.Key = undir(c, got.CACert), undir(c, got.Cert), undir(c, got.Key)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if c.DCS.External() != (len(tc.want.Endpoints) > 0) {
				t.Errorf("External() = %v", c.DCS.External())
			}
		})
	}
}

// undir writes the config directory of paths in c as DIR.
func undir(c Config, path string) string { return strings.ReplaceAll(path, c.Dir, "DIR") }

// TestWithoutDCSKeys: a file without dcs.* keys, or with all of them blank,
// loads exactly as before external etcd existed: embedded members.
func TestWithoutDCSKeys(t *testing.T) {
	before, _, err := loadString(t, conf(), "")
	if err != nil {
		t.Fatal(err)
	}
	if before.DCS.External() || !reflect.DeepEqual(before.DCS, DCSConfig{}) {
		t.Errorf("DCS = %+v, want none", before.DCS)
	}
	blank, warns, err := loadString(t, conf("dcs.endpoints=", "dcs.cacert=", "dcs.cert=", "dcs.key=", "dcs.user=", "dcs.password="), "")
	if err != nil || len(warns) != 0 {
		t.Fatalf("blank dcs keys: %v %v", err, warns)
	}
	blank.Dir, blank.PropertiesFile, blank.NodesFile, blank.TLS = before.Dir, before.PropertiesFile, before.NodesFile, before.TLS
	if !reflect.DeepEqual(blank, before) {
		t.Errorf("blank dcs keys changed the config:\ngot  %+v\nwant %+v", blank, before)
	}
	for _, kv := range before.Effective() {
		if strings.HasPrefix(kv[0], "dcs.") && kv[0] != "dcs.election.timeout" && kv[1] != "" {
			t.Errorf("%s = %q without dcs keys", kv[0], kv[1])
		}
	}
	for _, cluster := range []string{"efm4", "efm5"} {
		c, _, err := Load("testdata", cluster)
		if err != nil || c.DCS.External() || !reflect.DeepEqual(c.DCS, DCSConfig{}) {
			t.Errorf("%s: DCS %+v, err %v", cluster, c.DCS, err)
		}
	}
}

// TestDCSPasswordHidden: the password is in no log line or printed Config.
func TestDCSPasswordHidden(t *testing.T) {
	c, errs, warns := loadDCS(t, conf("dcs.endpoints=etcd1:2379,etcd2:2379", "dcs.user=pgfm", "dcs.password=hunter2"), 0o600)
	if errs != nil || warns != nil {
		t.Fatalf("errors %q, warnings %q (a 0600 file gives no warning)", errs, warns)
	}
	if c.DCS.Password != "hunter2" {
		t.Fatalf("password %q", c.DCS.Password)
	}
	eff := fmt.Sprint(c.Effective())
	for _, s := range []string{eff, fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.DCS)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password shown in %s", s)
		}
	}
	if !strings.Contains(eff, "[dcs.endpoints http://etcd1:2379,http://etcd2:2379]") || !strings.Contains(eff, "[dcs.user pgfm]") {
		t.Errorf("effective config: %s", eff)
	}
	if !strings.Contains(fmt.Sprintf("%+v", c), "User:pgfm Password:(hidden)}") {
		t.Errorf("%+v", c)
	}
}

// TestDCSFileUnreadable needs a user that permissions apply to.
func TestDCSFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "client-key.pem")
	if err := os.WriteFile(key, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	if msg := checkReadable(key, "a key"); msg != key+" cannot be read: permission denied; make it readable by the agent's user (and by no one else if it is a private key)" {
		t.Errorf("got %q", msg)
	}
}

// FuzzParseEndpoints: what dcs.endpoints accepts becomes URLs that Go's URL
// parser reads back as scheme://host:port, and that parse again unchanged.
func FuzzParseEndpoints(f *testing.F) {
	for _, tc := range dcsCases {
		_, v, _ := strings.Cut(tc.props, "dcs.endpoints=")
		v, _, _ = strings.Cut(v, "\n")
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, s string) {
		eps, msg := parseEndpoints(strings.TrimSpace(s))
		if msg != "" {
			return
		}
		for _, tls := range []bool{false, true} {
			urls := withScheme(eps, tls)
			if mixed(urls) {
				continue // checkDCS refuses it (dcsCases)
			}
			for _, e := range urls {
				u, err := url.Parse(e)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" || u.Hostname() == "" ||
					u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
					t.Fatalf("%q gave %q: %v %#v", s, e, err, u)
				}
			}
			again, msg := parseEndpoints(strings.Join(urls, ","))
			if msg != "" || !reflect.DeepEqual(again, urls) {
				t.Fatalf("%q: %q parses to %q: %s", s, urls, again, msg)
			}
		}
	})
}

func mixed(urls []string) bool {
	for _, e := range urls {
		if strings.HasPrefix(e, "http://") != strings.HasPrefix(urls[0], "http://") {
			return true
		}
	}
	return false
}

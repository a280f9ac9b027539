package agent

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/config"
)

func TestScriptRunners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("users are looked up only when the agent is root")
	}
	const missing = "pgfm-no-such-user"
	for _, tc := range []struct {
		name       string
		cfg        config.Config
		want       string // error; "" = none
		user, note string // users of the two runners
	}{
		{name: "no scripts, no such owner (a witness)", cfg: config.Config{DB: config.DB{ServiceOwner: missing}}},
		{name: "fence script, owner missing", cfg: config.Config{ScriptFence: "/bin/true", DB: config.DB{ServiceOwner: missing}},
			want: `scripts run as db.service.owner "pgfm-no-such-user": hook: user "pgfm-no-such-user" does not exist on this host`},
		{name: "notification script, script.user missing", cfg: config.Config{ScriptNotification: "/bin/true", ScriptUser: missing, DB: config.DB{ServiceOwner: "nobody"}},
			want: `scripts run as script.user "pgfm-no-such-user"`},
		{name: "script.user wins", cfg: config.Config{ScriptFence: "/bin/true", ScriptNotification: "/bin/true", ScriptUser: "nobody", DB: config.DB{ServiceOwner: missing}},
			user: "nobody", note: "nobody"},
		{name: "owner by default", cfg: config.Config{ScriptResumed: "/bin/true", DB: config.DB{ServiceOwner: "nobody"}},
			user: "nobody"},
		{name: "root explicitly", cfg: config.Config{ScriptFence: "/bin/true", ScriptUser: "root", DB: config.DB{ServiceOwner: "nobody"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{cfg: tc.cfg, log: slog.New(slog.DiscardHandler)}
			scripts, notify, err := a.scriptRunners()
			if tc.want != "" {
				if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) ||
					!strings.Contains(err.Error(), "set script.user") {
					t.Fatalf("err = %v, want ErrRefused with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if scripts.User() != tc.user || notify.User() != tc.note {
				t.Errorf("users %q and %q, want %q and %q", scripts.User(), notify.User(), tc.user, tc.note)
			}
		})
	}
}

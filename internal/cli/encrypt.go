package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/secret"
)

// Environment variables --from-env reads the password from: pgfm's own
// first, then EFM's, so that EFM's password scripts work unchanged.
const (
	passEnv    = "PGFMPASS"
	efmPassEnv = "EFMPASS"
)

func encryptCmd(e *env) *cobra.Command {
	var fromEnv bool
	cmd := &cobra.Command{
		Use:   "encrypt CLUSTER [--from-env]",
		Short: "Encrypt the database password for CLUSTER.properties (db.password.encrypted)",
		Long: `encrypt asks for db.user's password twice, without echo, and prints the line
db.password.encrypted=pgfm1:... to paste into CONFIGDIR/CLUSTER.properties.
With --from-env it reads the password from $PGFMPASS (or EFM's $EFMPASS) and
prints only the value, for scripts (script.db.password with
script.db.password.encrypted=true).

The value only works for the cluster named CLUSTER. Its key is derived from
that name, so anyone who can read the properties file and knows the name can
decrypt it: it keeps the password out of tickets, backups and screenshots,
not away from readers of the file on the host. Keep the file mode 0600, or
use script.db.password with a password manager. See docs/security.md.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster := args[0]
			if err := config.ValidateClusterName(cluster); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			file := filepath.Join(e.dir(), cluster+".properties")
			if fromEnv {
				return e.encryptFromEnv(cluster, file)
			}
			return e.encryptPrompt(cmd.InOrStdin(), cluster, file)
		},
	}
	cmd.Flags().BoolVar(&fromEnv, "from-env", false, "read the password from $"+passEnv+" (or $"+efmPassEnv+") and print only the value")
	return cmd
}

// encryptFromEnv is --from-env: the value alone on stdout.
func (e *env) encryptFromEnv(cluster, file string) error {
	pw, ok := os.LookupEnv(passEnv)
	if !ok {
		pw = os.Getenv(efmPassEnv)
	}
	if pw == "" {
		return &ExitError{Code: 1, Err: fmt.Errorf("--from-env: $%s (or $%s) is not set or empty; set it to db.user's password", passEnv, efmPassEnv)}
	}
	v, err := secret.Encrypt(cluster, pw)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	e.warnMissing(file)
	fmt.Fprintln(e.stdout, v)
	return nil
}

// encryptPrompt asks twice and prints what EFM's `efm encrypt` prints.
func (e *env) encryptPrompt(in io.Reader, cluster, file string) error {
	fmt.Fprintf(e.stdout, "This utility will generate an encrypted password for you to place in your\npgfm cluster property file: %s\n", file)
	e.warnMissing(file)
	r := bufio.NewReader(in)
	pw, err := readPassword(e.stdout, in, r, "Please enter the password and hit enter: ")
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	again, err := readPassword(e.stdout, in, r, "Please enter the password again to confirm: ")
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	if pw != again {
		return &ExitError{Code: 1, Err: fmt.Errorf("the passwords do not match; run `pgfm encrypt %s` again", cluster)}
	}
	v, err := secret.Encrypt(cluster, pw)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	fmt.Fprintf(e.stdout, "The encrypted password is: %s\n", v)
	fmt.Fprintf(e.stdout, "Please paste this into your %s.properties file\ndb.password.encrypted=%s\n", cluster, v)
	fmt.Fprintf(e.stdout, "(It works only in cluster %s. Anyone who can read the file and knows the cluster name can decrypt it: keep the file mode 0600.)\n", cluster)
	return nil
}

// warnMissing says, on stderr, that the properties file is not there yet
// (EFM warns too); the value is printed all the same.
func (e *env) warnMissing(file string) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(e.stderr, "pgfm: warning: %s does not exist (yet); check the cluster name and --config-dir\n", file)
	}
}

// readPassword prints prompt and reads one line from r, with the
// terminal's echo off when in is a terminal. Every read goes through r, so
// that two lines piped in are both found.
func readPassword(out io.Writer, in io.Reader, r *bufio.Reader, prompt string) (string, error) {
	fmt.Fprint(out, prompt)
	if f, ok := in.(*os.File); ok {
		if restore, err := echoOff(int(f.Fd())); err == nil {
			defer func() {
				restore()
				fmt.Fprintln(out) // the Enter the terminal did not echo
			}()
		}
	}
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password given (end of input)")
		}
		return "", fmt.Errorf("reading the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}

// echoOff turns off the echo of the terminal on fd, keeping line editing;
// it fails when fd is not a terminal. An interrupt while echo is off puts
// the echo back before the program ends.
func echoOff(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	put := func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		if _, ok := <-sigs; ok {
			put()
			os.Exit(130)
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(sigs)
		put()
	}, nil
}

//go:build unix

package e2e_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"thunder/internal/harness"
)

// kafkaAuthFailTimeout bounds how long a processor refused by Kafka may take
// to exit: kfake drops the connection on a wrong password, which the client
// retries, so Open gives up only at the default commit timeout (30s).
const kafkaAuthFailTimeout = 30*time.Second + startTimeout

// TestKafkaTLSSASL ships to a Kafka broker that requires TLS (verified with
// --kafka-tls-ca, and a client certificate: --kafka-tls-cert/key) and
// SCRAM-SHA-512: every line arrives exactly once. A processor with a wrong
// password exits with status 1 and says why.
func TestKafkaTLSSASL(t *testing.T) {
	skipShort(t)
	pki := newTestPKI(t)
	scert, skey := pki.issue(t, "kafka", "kafka", true)
	ccert, ckey := pki.issue(t, "kafka-client", "thunder", false)
	spair, err := tls.LoadX509KeyPair(scert, skey)
	if err != nil {
		t.Fatal(err)
	}
	cpair, err := tls.LoadX509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.caCert)
	const user, pass = "thunder", "kafka-s3cret"
	c := startKafka(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{spair}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass))
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "password"), filepath.Join(dir, "wrong-password")
	if err := os.WriteFile(good, []byte(pass+"\n"), 0o600); err != nil { // a trailing newline is not part of it
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not-"+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	security := func(passwordFile string) []string {
		return []string{"--kafka-tls", "--kafka-tls-ca=" + pki.ca, "--kafka-tls-cert=" + ccert, "--kafka-tls-key=" + ckey, "--kafka-sasl=scram-sha-512",
			"--kafka-sasl-user=" + user, "--kafka-sasl-password-file=" + passwordFile}
	}

	// The refused processor first: it takes the longest.
	refused := harness.NewDaemon(t, "processor-wrong-password", append([]string{"logs-processor", "--name=kp-wrong",
		"--kafka-brokers=" + strings.Join(c.ListenAddrs(), ","), "--listen-address=127.0.0.1:0"}, security(bad)...))
	if err := refused.Start(); err != nil {
		t.Fatal(err)
	}

	src := t.TempDir()
	p := startKafkaProcessor(t, c, "", security(good)...)
	col := startCollector(t, "host", src, offsetsDB(t), p.Addr)
	specs := []writerSpec{tlsWriter("sec-a", src)}
	w := startWriters(t, specs...)
	r := newKafkaReaderWith(t, c, []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cpair}, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
	}, true, false, writerNames(specs)...)

	expect := w.Wait()
	r.waitDelivered(expect, p, col)
	col.Stop()
	p.Stop()
	rep := r.finalCheck(expect)
	if r.Dups != 0 {
		t.Errorf("read_committed: %d records with a (stream, offset) read before: %q", r.Dups, r.sample)
	}
	t.Logf("figures: lines=%d records=%d", rep.Lines, r.Recs)

	if !refused.Wait(kafkaAuthFailTimeout) {
		t.Fatalf("processor with a wrong Kafka password still running after %v", kafkaAuthFailTimeout)
	}
	log := refused.LogText()
	t.Logf("%s: %s", refused.Name, strings.TrimSpace(log))
	if code := refused.ProcessState().ExitCode(); code != 1 {
		t.Errorf("processor with a wrong Kafka password: exit status %d (%v), want 1", code, refused.Err())
	}
	if !regexp.MustCompile(`(?m)^thunder: kafka: .*SASL authentication failed`).MatchString(log) {
		t.Errorf("processor with a wrong Kafka password does not say why:\n%s", harness.Tail([]byte(log), 2048))
	}
	if harness.ListeningRE.MatchString(log) {
		t.Errorf("processor with a wrong Kafka password listened for collectors")
	}
}

// TestKafkaSecurityFlags: inconsistent Kafka TLS and SASL flags are usage
// errors (status 2) naming the flags, found before connecting to anything.
func TestKafkaSecurityFlags(t *testing.T) {
	skipShort(t)
	pki := newTestPKI(t)
	cert, key := pki.issue(t, "client", "thunder", false)
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--kafka-tls-cert=" + cert}, "--kafka-tls-cert and --kafka-tls-key go together"},
		{"key without cert", []string{"--kafka-tls-key=" + key}, "--kafka-tls-cert and --kafka-tls-key go together"},
		{"unknown mechanism", []string{"--kafka-sasl=scram-sha-1", "--kafka-sasl-user=u", "--kafka-sasl-password-file=" + pw}, `--kafka-sasl "scram-sha-1"`},
		{"no user", []string{"--kafka-sasl=plain", "--kafka-sasl-password-file=" + pw}, "--kafka-sasl needs --kafka-sasl-user and --kafka-sasl-password-file"},
		{"no mechanism", []string{"--kafka-sasl-user=u", "--kafka-sasl-password-file=" + pw}, "--kafka-sasl-user and --kafka-sasl-password-file need --kafka-sasl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing listens there: a flag error must come first.
			args := append([]string{"logs-processor", "--kafka-brokers=127.0.0.1:1", "--listen-address=127.0.0.1:0"}, tt.args...)
			d := harness.NewDaemon(t, "processor", args)
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			if !d.Wait(startTimeout) {
				t.Fatalf("still running after %v", startTimeout)
			}
			log := d.LogText()
			if code := d.ProcessState().ExitCode(); code != 2 {
				t.Errorf("exit status %d, want 2 (usage); log:\n%s", code, log)
			}
			if !strings.Contains(log, "thunder: logs-processor: "+tt.want) {
				t.Errorf("log does not say %q:\n%s", tt.want, log)
			}
		})
	}
}

package kafka_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"thunder/internal/kafka"
	"thunder/internal/kafka/kafkatest"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool // holding only cert
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "thunder kafka test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// serverConfig returns a broker TLS config whose certificate, signed by
// the CA, is valid for the IP 127.0.0.1 only.
func (ca *testCA) serverConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kfake"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

// clientTLS is what the processor builds from --kafka-tls-ca.
func (ca *testCA) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
}

// failFast makes Open give up quickly on a broker that refuses it.
func failFast(cfg *kafka.Config) {
	cfg.CommitTimeout = 2 * time.Second
}

// openFails checks that Open fails, within its CommitTimeout and some
// slack, with an error matching re.
func openFails(t *testing.T, cfg kafka.Config, re *regexp.Regexp) {
	t.Helper()
	start := time.Now()
	o, err := kafka.Open(t.Context(), cfg)
	took := time.Since(start)
	if err == nil {
		o.Close()
		t.Fatal("Open succeeded, want an error")
	}
	t.Logf("Open failed after %v: %v", took.Round(time.Millisecond), err)
	if !re.MatchString(err.Error()) {
		t.Errorf("Open error %q does not match %q", err, re)
	}
	// Bounded by the config's timeout (a loaded machine may add a little).
	if limit := cfg.CommitTimeout + 5*time.Second; took > limit {
		t.Errorf("Open took %v, more than %v", took, limit)
	}
}

// deliver attaches one stream to o, appends three lines, waits for their
// commit and checks that a read_committed consumer using opts (the
// cluster's security) reads them.
func deliver(t *testing.T, c *kfake.Cluster, o *kafka.Output, topic string, opts ...kgo.Opt) {
	t.Helper()
	r := run(t, o)
	s, _, _, err := attachAt(o, key("h", 1), mustName(t, topic), 0, owner("conn"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(owner("conn"), chunk(0, 14, []byte("one\ntwo\nthree\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 14)
	if got, want := kafkatest.Values(kafkatest.ConsumeWith(t, c, opts, true, topic)), []string{"one", "two", "three"}; !slices.Equal(got, want) {
		t.Fatalf("topic %s holds %q, want %q", topic, got, want)
	}
}

// TestTLS connects to a TLS broker whose certificate is verified against
// the test CA (for 127.0.0.1, the address dialed), and delivers.
func TestTLS(t *testing.T) {
	ca := newTestCA(t)
	c := kafkatest.NewCluster(t, kfake.TLS(ca.serverConfig(t)))
	cfg := testConfig(t, c)
	cfg.TLS = ca.clientTLS()
	deliver(t, c, mustOpen(t, cfg), "tls.log", kgo.DialTLSConfig(ca.clientTLS()))
}

// TestTLSRefused: a broker certificate from another CA, or no TLS at all
// against a TLS broker, makes Open fail with the reason, in time.
func TestTLSRefused(t *testing.T) {
	ca, rogue := newTestCA(t), newTestCA(t)
	c := kafkatest.NewCluster(t, kfake.TLS(ca.serverConfig(t)))
	t.Run("untrusted CA", func(t *testing.T) {
		cfg := testConfig(t, c)
		failFast(&cfg)
		cfg.TLS = rogue.clientTLS()
		openFails(t, cfg, regexp.MustCompile(`certificate signed by unknown authority`))
	})
	t.Run("system roots", func(t *testing.T) {
		cfg := testConfig(t, c)
		failFast(&cfg)
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		openFails(t, cfg, regexp.MustCompile(`certificate signed by unknown authority`))
	})
	t.Run("plaintext", func(t *testing.T) {
		cfg := testConfig(t, c)
		failFast(&cfg)
		openFails(t, cfg, regexp.MustCompile(`requires TLS`))
	})
}

// saslMechs are the mechanisms --kafka-sasl offers, built like the
// processor builds them.
var saslMechs = []struct {
	name string // kfake's
	mech func(user, pass string) sasl.Mechanism
}{
	{"PLAIN", func(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() }},
	{"SCRAM-SHA-256", func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() }},
	{"SCRAM-SHA-512", func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() }},
}

// TestSASL authenticates with each mechanism: the right password
// delivers; a wrong password, an unknown user and no SASL at all make Open
// fail with the reason, in time.
func TestSASL(t *testing.T) {
	for _, m := range saslMechs {
		t.Run(m.name, func(t *testing.T) {
			c := kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.Superuser(m.name, "thunder", "s3cret"))
			t.Run("ok", func(t *testing.T) {
				cfg := testConfig(t, c)
				cfg.SASL = m.mech("thunder", "s3cret")
				deliver(t, c, mustOpen(t, cfg), "sasl.log", kgo.SASL(m.mech("thunder", "s3cret")))
			})
			t.Run("wrong password", func(t *testing.T) {
				cfg := testConfig(t, c)
				failFast(&cfg)
				cfg.SASL = m.mech("thunder", "wrong")
				openFails(t, cfg, regexp.MustCompile(`SASL authentication failed`))
			})
			t.Run("unknown user", func(t *testing.T) {
				cfg := testConfig(t, c)
				failFast(&cfg)
				cfg.SASL = m.mech("nobody", "s3cret")
				openFails(t, cfg, regexp.MustCompile(`SASL authentication failed`))
			})
			t.Run("no sasl", func(t *testing.T) {
				cfg := testConfig(t, c)
				failFast(&cfg)
				openFails(t, cfg, regexp.MustCompile(`SASL is required`))
			})
		})
	}
}

// TestTLSAndSASL combines both, as the processor's flags do.
func TestTLSAndSASL(t *testing.T) {
	ca := newTestCA(t)
	c := kafkatest.NewCluster(t, kfake.TLS(ca.serverConfig(t)), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "thunder", "s3cret"))
	mech := saslMechs[2].mech
	cfg := testConfig(t, c)
	cfg.TLS = ca.clientTLS()
	cfg.SASL = mech("thunder", "s3cret")
	deliver(t, c, mustOpen(t, cfg), "both.log", kgo.DialTLSConfig(ca.clientTLS()), kgo.SASL(mech("thunder", "s3cret")))

	t.Run("wrong password", func(t *testing.T) {
		cfg := cfg
		failFast(&cfg)
		cfg.SASL = mech("thunder", "wrong")
		openFails(t, cfg, regexp.MustCompile(`SASL authentication failed`))
	})
}

//go:build unix

package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"thunder/internal/linecheck"
)

// tlsLines is how many lines each writer of the TLS tests writes.
const tlsLines = 4_000

// testPKI is a CA with a server certificate for 127.0.0.1 and client
// certificates, written as PEM files for the daemons' flags.
type testPKI struct {
	dir    string
	ca     string // CA certificate
	key    *ecdsa.PrivateKey
	caCert *x509.Certificate
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	var err error
	if p.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "thunder test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	if p.caCert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.ca = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.ca, "CERTIFICATE", der)
	p.serial = 1
	return p
}

// issue creates a certificate and key signed by the CA and returns their
// files. A server certificate is for the IP 127.0.0.1; a client
// certificate has common name cn.
func (p *testPKI) issue(t *testing.T, name, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsWriter is one writer of the TLS tests into its own source dir.
func tlsWriter(id, dir string) writerSpec {
	return writerSpec{ID: id, Dir: dir, Name: id + ".log", Contract: linecheck.OpenWriteClose, Lines: tlsLines, Rate: writerRate}
}

// checkRefusedCollector checks a collector that must not get through: it
// keeps running, retries (it logged why it cannot connect) and none of its
// lines reached the target (Verify counts them as unexpected, since they
// are not in expect).
func checkRefusedCollector(t *testing.T, c *Daemon, re *regexp.Regexp, running ...*Daemon) {
	t.Helper()
	waitLogRE(t, 30*time.Second, c, re, running...)
	if !c.Running() {
		t.Fatalf("%s exited after being refused: %v", c.Name, c.Err())
	}
}

// TestTLS streams over TLS with only a server certificate: the collector
// verifies the processor with --tls-ca and delivers exactly once, and a
// collector speaking plain TCP to the TLS processor fails cleanly and keeps
// retrying without delivering anything.
func TestTLS(t *testing.T) {
	skipShort(t)
	pki := newTestPKI(t)
	scert, skey := pki.issue(t, "server", "processor", true)
	target, src, plainSrc := t.TempDir(), t.TempDir(), t.TempDir()

	p := startProcessor(t, target, "--tls-cert="+scert, "--tls-key="+skey)
	c := startCollector(t, "tls", src, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca)
	plain := startCollector(t, "plain", plainSrc, offsetsDB(t), p.Addr)
	w := startWriters(t, tlsWriter("tls-a", src), tlsWriter("tls-b", src))
	pw := startWriters(t, tlsWriter("plain-a", plainSrc))

	expect := w.Wait()
	pw.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, c, plain)
	// The plain collector's handshake reaches a TLS server as garbage.
	waitLogRE(t, 30*time.Second, p, regexp.MustCompile(`collector connection failed.*TLS`), p, c, plain)
	checkRefusedCollector(t, plain, regexp.MustCompile(`cannot connect to processor`), p, c)
	c.Stop()
	plain.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}

// TestMutualTLS requires client certificates: a collector with one signed by
// the CA streams exactly once; one without a certificate, and one with a
// certificate from another CA, are refused at the TLS handshake and keep
// retrying.
func TestMutualTLS(t *testing.T) {
	skipShort(t)
	pki := newTestPKI(t)
	scert, skey := pki.issue(t, "server", "processor", true)
	ccert, ckey := pki.issue(t, "client-good", "good", false)
	rogue := newTestPKI(t)
	rcert, rkey := rogue.issue(t, "client-rogue", "good", false)
	target, src, nocertSrc, rogueSrc := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()

	p := startProcessor(t, target, "--tls-cert="+scert, "--tls-key="+skey, "--tls-ca="+pki.ca)
	good := startCollector(t, "good", src, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca, "--tls-cert="+ccert, "--tls-key="+ckey)
	nocert := startCollector(t, "nocert", nocertSrc, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca)
	rog := startCollector(t, "rogue", rogueSrc, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca, "--tls-cert="+rcert, "--tls-key="+rkey)
	w := startWriters(t, tlsWriter("good-a", src), tlsWriter("good-b", src))
	bad := startWriters(t, tlsWriter("nocert-a", nocertSrc), tlsWriter("rogue-a", rogueSrc))

	expect := w.Wait()
	bad.Wait()
	all := []*Daemon{p, good, nocert, rog}
	waitDelivered(t, target, expect, linecheck.Options{}, all...)
	waitLogRE(t, 30*time.Second, p, regexp.MustCompile(`certificate`), all...)
	checkRefusedCollector(t, nocert, regexp.MustCompile(`cannot connect to processor.*certificate`), all...)
	checkRefusedCollector(t, rog, regexp.MustCompile(`cannot connect to processor.*(certificate|unknown authority|bad)`), all...)
	if n := regexp.MustCompile(`collector connected.*collector=(nocert|rogue)`).FindAllString(p.LogText(), -1); len(n) > 0 {
		t.Errorf("processor accepted a collector without a valid certificate: %q", n)
	}
	good.Stop()
	nocert.Stop()
	rog.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}

// TestTLSBindName binds collector names to certificates: the collector
// named like its certificate's CN streams; one presenting the same valid
// certificate under another name is refused with an auth error.
func TestTLSBindName(t *testing.T) {
	skipShort(t)
	pki := newTestPKI(t)
	scert, skey := pki.issue(t, "server", "processor", true)
	ccert, ckey := pki.issue(t, "client-good", "good", false)
	wcert, wkey := pki.issue(t, "client-wrong", "someone-else", false)
	target, src, impSrc, wrongSrc := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()

	p := startProcessor(t, target, "--tls-cert="+scert, "--tls-key="+skey, "--tls-ca="+pki.ca, "--tls-bind-name")
	good := startCollector(t, "good", src, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca, "--tls-cert="+ccert, "--tls-key="+ckey)
	// Same valid certificate, another name.
	imp := startCollector(t, "impostor", impSrc, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca, "--tls-cert="+ccert, "--tls-key="+ckey)
	// A valid certificate whose CN is not the collector's name.
	wrong := startCollector(t, "wrongcn", wrongSrc, offsetsDB(t), p.Addr, "--tls-ca="+pki.ca, "--tls-cert="+wcert, "--tls-key="+wkey)
	w := startWriters(t, tlsWriter("good-a", src))
	bad := startWriters(t, tlsWriter("impostor-a", impSrc), tlsWriter("wrongcn-a", wrongSrc))

	expect := w.Wait()
	bad.Wait()
	all := []*Daemon{p, good, imp, wrong}
	waitDelivered(t, target, expect, linecheck.Options{}, all...)
	waitLogRE(t, 30*time.Second, p, regexp.MustCompile(`collector refused.*code=auth.*impostor`), all...)
	waitLogRE(t, 30*time.Second, p, regexp.MustCompile(`collector refused.*code=auth.*wrongcn`), all...)
	checkRefusedCollector(t, imp, regexp.MustCompile(`cannot connect to processor.*auth`), all...)
	checkRefusedCollector(t, wrong, regexp.MustCompile(`cannot connect to processor.*auth`), all...)
	good.Stop()
	imp.Stop()
	wrong.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}

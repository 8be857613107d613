package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// tlsFlags are the transport security flags of both daemons.
type tlsFlags struct {
	cert, key, ca string
	serverName    string // collector only
}

func (t *tlsFlags) register(fs *flag.FlagSet, collector bool) {
	fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate (processor: its server certificate; collector: its client certificate for mutual TLS)")
	fs.StringVar(&t.key, "tls-key", "", "PEM private key of --tls-cert")
	if collector {
		fs.StringVar(&t.ca, "tls-ca", "", "PEM CA bundle to verify the processor with; enables TLS (default: system roots when --tls-cert is set)")
		fs.StringVar(&t.serverName, "tls-server-name", "", "name to verify in the processor's certificate (default: the host of --target-address)")
	} else {
		fs.StringVar(&t.ca, "tls-ca", "", "PEM CA bundle; when set, collectors must present a certificate it signed (mutual TLS)")
	}
}

func (t *tlsFlags) enabled() bool { return t.cert != "" || t.key != "" || t.ca != "" }

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls ca %s: no PEM certificates in it", path)
	}
	return pool, nil
}

func (t *tlsFlags) keyPair() ([]tls.Certificate, error) {
	if t.cert == "" && t.key == "" {
		return nil, nil
	}
	if t.cert == "" || t.key == "" {
		return nil, usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	c, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return nil, fmt.Errorf("tls key pair: %w", err)
	}
	return []tls.Certificate{c}, nil
}

// server returns the processor's TLS config, nil when TLS is off.
func (t *tlsFlags) server() (*tls.Config, error) {
	if !t.enabled() {
		return nil, nil
	}
	certs, err := t.keyPair()
	if err != nil {
		return nil, err
	}
	if certs == nil {
		return nil, usageError{errors.New("a TLS processor needs --tls-cert and --tls-key")}
	}
	cfg := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	if t.ca != "" {
		if cfg.ClientCAs, err = loadPool(t.ca); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// client returns the collector's TLS config, nil when TLS is off.
func (t *tlsFlags) client() (*tls.Config, error) {
	if !t.enabled() {
		return nil, nil
	}
	certs, err := t.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12, ServerName: t.serverName}
	if t.ca != "" {
		if cfg.RootCAs, err = loadPool(t.ca); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

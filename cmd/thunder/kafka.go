package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"thunder/internal/kafka"
)

// kafkaFlags are the processor's Kafka output flags.
type kafkaFlags struct {
	cfg          kafka.Config
	brokers      string
	tls          bool
	ca, cert     string
	key          string
	saslMech     string
	saslUser     string
	passwordFile string
}

func (k *kafkaFlags) register(fs *flag.FlagSet) {
	k.cfg = kafka.DefaultConfig()
	fs.StringVar(&k.brokers, "kafka-brokers", "", "comma-separated Kafka seed brokers HOST:PORT; writes every line to Kafka as well (or only, without --target-dir)")
	fs.StringVar(&k.cfg.Topic, "kafka-topic", k.cfg.Topic, "topic template: {host} = collector name, {file} = file name with '/' as '.'; other characters outside [A-Za-z0-9._-] become '_'")
	fs.StringVar(&k.cfg.StateTopic, "kafka-state-topic", k.cfg.StateTopic, "compacted topic recording what was committed (default thunder-state.<--name>)")
	fs.BoolVar(&k.cfg.Transactions, "kafka-transactions", k.cfg.Transactions, "commit with Kafka transactions: exactly once for read_committed consumers; false: at least once")
	fs.StringVar(&k.cfg.TransactionalID, "kafka-transactional-id", k.cfg.TransactionalID, "transactional id, unique per processor (default thunder-<--name>)")
	fs.DurationVar(&k.cfg.CommitInterval, "kafka-commit-interval", k.cfg.CommitInterval, "longest wait before received lines are committed to Kafka and acknowledged (one transaction)")
	fs.Var(sizeFlag{&k.cfg.MaxBufferedBytes}, "kafka-buffer-bytes", "most memory for lines held for Kafka (each line counts its bytes plus about 400 for its record); reading from collectors pauses past it")
	fs.BoolVar(&k.tls, "kafka-tls", false, "connect to Kafka with TLS (system roots unless --kafka-tls-ca)")
	fs.StringVar(&k.ca, "kafka-tls-ca", "", "PEM CA bundle to verify the brokers with; implies --kafka-tls")
	fs.StringVar(&k.cert, "kafka-tls-cert", "", "PEM client certificate for Kafka (mutual TLS); implies --kafka-tls")
	fs.StringVar(&k.key, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert")
	fs.StringVar(&k.saslMech, "kafka-sasl", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (default none)")
	fs.StringVar(&k.saslUser, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&k.passwordFile, "kafka-sasl-password-file", "", "file holding the SASL password")
}

// config returns the Kafka output's config, nil when --kafka-brokers is
// not set.
func (k *kafkaFlags) config() (*kafka.Config, error) {
	if k.brokers == "" {
		return nil, nil
	}
	cfg := k.cfg
	cfg.Brokers = append(cfg.Brokers, splitList(k.brokers)...)
	// The config comes back with the errors too, so that the settings
	// checks see a Kafka output and report nothing made up about it.
	var err1, err2 error
	cfg.TLS, err1 = k.tlsConfig()
	cfg.SASL, err2 = k.sasl()
	return &cfg, errors.Join(err1, err2)
}

func (k *kafkaFlags) tlsConfig() (*tls.Config, error) {
	if !k.tls && k.ca == "" && k.cert == "" && k.key == "" {
		return nil, nil
	}
	if (k.cert == "") != (k.key == "") {
		// Checked here: keyPair's message names --tls-cert and --tls-key.
		return nil, usageError{errors.New("--kafka-tls-cert and --kafka-tls-key go together")}
	}
	t := tlsFlags{cert: k.cert, key: k.key}
	certs, err := t.keyPair()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	cfg := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12}
	if k.ca != "" {
		if cfg.RootCAs, err = loadPool(k.ca); err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
	}
	return cfg, nil
}

func (k *kafkaFlags) sasl() (sasl.Mechanism, error) {
	if k.saslMech == "" {
		if k.saslUser != "" || k.passwordFile != "" {
			return nil, usageError{errors.New("--kafka-sasl-user and --kafka-sasl-password-file need --kafka-sasl")}
		}
		return nil, nil
	}
	if k.saslUser == "" || k.passwordFile == "" {
		return nil, usageError{errors.New("--kafka-sasl needs --kafka-sasl-user and --kafka-sasl-password-file")}
	}
	b, err := os.ReadFile(k.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("kafka sasl password: %w", err)
	}
	pass := strings.TrimRight(string(b), "\r\n")
	switch k.saslMech {
	case "plain":
		return plain.Auth{User: k.saslUser, Pass: pass}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: k.saslUser, Pass: pass}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: k.saslUser, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, usageError{fmt.Errorf("--kafka-sasl %q: want plain, scram-sha-256 or scram-sha-512", k.saslMech)}
}

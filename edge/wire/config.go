package wire

import (
	"errors"
	"fmt"
	"time"
)

// ConfigPush carries a box's whole device config (the YAML of
// firmware-config/) from the cloud, retained on the box's config topic, so a
// box that was offline gets the latest when it reconnects.
type ConfigPush struct {
	V       int       `json:"v"`
	Version string    `json:"version"`
	At      time.Time `json:"at"`
	YAML    string    `json:"yaml"`
}

// MaxConfigBytes bounds a pushed config.
const MaxConfigBytes = 48 << 10

// Validate names the first bad field (the YAML itself is checked by the box).
func (c *ConfigPush) Validate() error {
	switch {
	case c.V != Version:
		return fmt.Errorf("v: got %d, want %d", c.V, Version)
	case c.Version == "" || len(c.Version) > 64:
		return errors.New("version: must be 1-64 characters")
	case c.At.IsZero():
		return errors.New("at: missing")
	case c.YAML == "" || len(c.YAML) > MaxConfigBytes:
		return fmt.Errorf("yaml: must be 1-%d bytes", MaxConfigBytes)
	}
	return nil
}

// DecodeConfigPush parses and validates a pushed config strictly.
func DecodeConfigPush(b []byte) (ConfigPush, error) {
	var c ConfigPush
	if err := decodeStrict(b, &c); err != nil {
		return ConfigPush{}, fmt.Errorf("config push: %w", err)
	}
	if err := c.Validate(); err != nil {
		return ConfigPush{}, fmt.Errorf("config push: %w", err)
	}
	return c, nil
}

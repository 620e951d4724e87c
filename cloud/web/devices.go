package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// ConfigPusher sends a device config to a box (command.Sender).
type ConfigPusher interface {
	PushConfig(device string, yaml []byte) (string, error)
}

// putDeviceConfig: PUT /api/v1/devices/:id/config with the YAML as body
// (admin). The box applies it live, rolls back if it fails, and reports the
// version it runs (and any refusal) in its retained status.
func (s *Server) putDeviceConfig(c *fiber.Ctx) error {
	if a := actorOf(c); a.Role != cases.Admin {
		return fiber.NewError(fiber.StatusForbidden, "pushing a device config needs the admin role")
	}
	device := c.Params("id")
	if err := wire.ValidDeviceID(device); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	if s.Configs == nil {
		return fiber.NewError(fiber.StatusServiceUnavailable, "config push is not wired in this server")
	}
	ver, err := s.Configs.PushConfig(device, c.Body())
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"device": device, "version": ver,
		"note": "sent retained; the box's status shows config_version once it runs it, or config_error"})
}

// Commander sends a command to a box (command.Sender).
type Commander interface {
	Command(device string, cmd wire.Command) (wire.Command, error)
}

// deviceCommand is the body of POST /api/v1/devices/:id/commands.
type deviceCommand struct {
	Kind   string `json:"kind"`   // snapshot or reload
	Camera string `json:"camera"` // snapshot: one camera; empty: every camera
}

// postDeviceCommand: POST /api/v1/devices/:id/commands (admin) with
// {"kind":"snapshot","camera":"cam1"} or {"kind":"reload"}. A snapshot comes
// back as a report of kind snapshot with its JPEG; a reload shows as the
// config_version (or config_error) in the box's status.
func (s *Server) postDeviceCommand(c *fiber.Ctx) error {
	if a := actorOf(c); a.Role != cases.Admin {
		return fiber.NewError(fiber.StatusForbidden, "sending a device command needs the admin role")
	}
	device := c.Params("id")
	if err := wire.ValidDeviceID(device); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	var b deviceCommand
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body: "+err.Error())
	}
	switch b.Kind {
	case wire.CmdSnapshot:
	case wire.CmdReload:
		if b.Camera != "" {
			return fiber.NewError(fiber.StatusBadRequest, "camera: reload applies to the whole box, give no camera")
		}
	default:
		return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("kind: %q is not snapshot or reload", b.Kind))
	}
	if s.Commands == nil {
		return fiber.NewError(fiber.StatusServiceUnavailable, "device commands are not wired in this server")
	}
	sent, err := s.Commands.Command(device, wire.Command{Cmd: b.Kind, Camera: b.Camera})
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"device": device, "id": sent.ID, "kind": sent.Cmd, "camera": sent.Camera})
}

// snapshotView is one snapshot a box took on command.
type snapshotView struct {
	Camera     string    `json:"camera"`
	Seq        uint64    `json:"seq"`
	ObservedAt time.Time `json:"observed_at"`
	URL        string    `json:"url"`
}

// getDeviceSnapshots: GET /api/v1/devices/:id/snapshots, the box's latest
// snapshots (the answers to snapshot commands), newest first, at most 20.
func (s *Server) getDeviceSnapshots(c *fiber.Ctx) error {
	device := c.Params("id")
	if err := wire.ValidDeviceID(device); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	payloads, err := s.Store.DeviceReportPayloads(c.UserContext(), device, wire.ReportSnapshot, 20)
	if err != nil {
		return err
	}
	out := []snapshotView{}
	for _, p := range payloads {
		var r wire.Report
		if json.Unmarshal(p, &r) != nil {
			continue
		}
		for _, e := range r.Evidence {
			if e.Kind == wire.EvidenceSnapshot {
				out = append(out, snapshotView{Camera: r.Camera, Seq: r.Seq, ObservedAt: r.ObservedAt, URL: "/api/v1/evidence/" + e.SHA256})
				break
			}
		}
	}
	return c.JSON(out)
}

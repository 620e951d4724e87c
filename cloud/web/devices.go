package web

import (
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

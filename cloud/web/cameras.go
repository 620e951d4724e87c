package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

// listCameras answers GET /api/v1/cameras: the fleet registry's cameras, each
// with its box, position, the facilities it watches (with their image regions)
// and its no-occupation zones. Without a fleet (serve --fleet) it is 404.
func (s *Server) listCameras(c *fiber.Ctx) error {
	if s.Engine == nil || s.Engine.Fleet == nil {
		return fiber.NewError(fiber.StatusNotFound, "cameras: no fleet registry loaded (gridwatch-cloud serve --fleet DIR)")
	}
	cams := s.Engine.Fleet.Cameras()
	if cams == nil {
		cams = []registry.Camera{}
	}
	return c.JSON(cams)
}

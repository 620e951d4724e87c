// Package imagery compares two dates of aerial or satellite imagery of the
// same place and reports what changed: it reads the images (OpenCV), co-registers
// the after image onto the before image (phase correlation, sub-pixel shift),
// normalises their radiometry, runs the change model of package change over
// overlapping tiles in parallel, and turns the cleaned change mask into
// polygons (contours) with an area and a score, georeferenced through package
// georef. It also scores a model on labelled pairs (Eval). cgo and gocv are
// confined to this package; change and georef are pure Go.
package imagery

// Package change owns the pixel-level change model for two dates of aerial
// imagery: radiometric normalisation, hand-made bi-temporal features at several
// scales, a small gradient-boosted tree classifier (trained and evaluated in
// pure Go), the clean-up of its probability map into a binary change mask
// (threshold, morphology, minimum area, connected components) and the
// precision/recall/F1/IoU bookkeeping used to score it. It is pure Go so that
// it builds and tests without OpenCV; co-registration, image decoding and
// contours live in the parent package imagery.
package change

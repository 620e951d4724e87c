package coverclass

// Threshold is the P(open) at and above which a cover is called open.
const Threshold = 0.5

// Confusion counts calls against the truth; open is the positive class.
type Confusion struct {
	TP int // open called open
	FN int // open called closed
	FP int // closed called open
	TN int // closed called closed
}

// Add counts one call.
func (c *Confusion) Add(truthOpen bool, pOpen float64) {
	called := pOpen >= Threshold
	switch {
	case truthOpen && called:
		c.TP++
	case truthOpen:
		c.FN++
	case called:
		c.FP++
	default:
		c.TN++
	}
}

// N is the number of calls counted.
func (c Confusion) N() int { return c.TP + c.FN + c.FP + c.TN }

// Accuracy is the share of right calls.
func (c Confusion) Accuracy() float64 { return ratio(c.TP+c.TN, c.N()) }

// OpenPrecision is the share of open calls that were open.
func (c Confusion) OpenPrecision() float64 { return ratio(c.TP, c.TP+c.FP) }

// OpenRecall is the share of open covers called open.
func (c Confusion) OpenRecall() float64 { return ratio(c.TP, c.TP+c.FN) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

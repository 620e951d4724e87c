package registry

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"sync"
)

// Demo returns the demo district, a Chaoyang-like registry generated in code from a fixed seed: 43
// streets and townships each with a street office, 8,423 grid cells (Chaoyang's published count) tiling
// an irregular outline inside lon 116.40–116.62, lat 39.82–40.08, the departments that own manhole
// covers, and 30,000 generated covers plus the three anchor covers the demo camera watches
// (DemoAnchors). The street names are real; the street codes, centres, boundaries, communities and
// covers are made up. The registry is built on the first call and shared afterwards.
func Demo() *Registry { return demoOnce() }

var demoOnce = sync.OnceValue(func() *Registry {
	r, err := New(generateDemo())
	if err != nil {
		panic("registry: the demo district does not validate: " + err.Error())
	}
	return r
})

// DemoAnchors returns the three covers the demo camera watches, in street 110105003 (三里屯街道
// Sanlitun): a power, a sewage and a telecom cover.
func DemoAnchors() []Facility { return slices.Clone(demoAnchors) }

var demoAnchors = []Facility{
	{ID: "1101050105000123", TypeCode: "0105", TypeName: "电力井盖 power cover", Lat: 39.92195, Lon: 116.44352, OwnerDept: "dept-power"},
	{ID: "1101050102000456", TypeCode: "0102", TypeName: "污水井盖 sewage cover", Lat: 39.92189, Lon: 116.44340, OwnerDept: "dept-water"},
	{ID: "1101050107000789", TypeCode: "0107", TypeName: "通讯井盖 telecom cover", Lat: 39.92201, Lon: 116.44371, OwnerDept: "dept-telecom"},
}

const (
	demoCounty = "110105" // Chaoyang, GB/T 2260
	demoSeed   = 20110105
	demoCells  = 8423

	// The generation grid: 80 × 122 cells of about 235 m × 237 m (5.6 ha, Chaoyang's average), of which
	// the demoCells nearest the middle (in a wobbly norm, to make an irregular outline) are kept.
	demoWest, demoEast   = 116.40, 116.62
	demoSouth, demoNorth = 39.82, 40.08
	demoCols, demoRows   = 80, 122
	demoJitter           = 0.15 // of a cell's size, for inner vertices; keeps the quadrilaterals convex

	demoCommunityBlock = 5 // a community is at most 5 × 5 cells of one street
)

// demoStreets lists the 43 streets (街道) and townships (地区) with made-up codes and rough centres.
// Their Voronoi regions are the streets' areas, so a centre's neighbours decide its shape.
var demoStreets = []struct {
	seq, name, zh string
	township      bool
	lat, lon      float64
}{
	{"001", "Jianwai", "建外", false, 39.906, 116.452},
	{"002", "Chaowai", "朝外", false, 39.918, 116.430},
	{"003", "Sanlitun", "三里屯", false, 39.928, 116.447},
	{"004", "Hujialou", "呼家楼", false, 39.921, 116.465},
	{"005", "Tuanjiehu", "团结湖", false, 39.933, 116.466},
	{"006", "Maizidian", "麦子店", false, 39.945, 116.470},
	{"007", "Liulitun", "六里屯", false, 39.935, 116.485},
	{"008", "Balizhuang", "八里庄", false, 39.918, 116.490},
	{"009", "Zuojiazhuang", "左家庄", false, 39.952, 116.440},
	{"010", "Xiangheyuan", "香河园", false, 39.958, 116.425},
	{"011", "Hepingjie", "和平街", false, 39.966, 116.415},
	{"012", "Anzhen", "安贞", false, 39.975, 116.405},
	{"013", "Yayuncun", "亚运村", false, 39.992, 116.410},
	{"014", "Xiaoguan", "小关", false, 39.980, 116.425},
	{"015", "Datun", "大屯", false, 40.006, 116.418},
	{"016", "Aoyuncun", "奥运村", false, 40.025, 116.405},
	{"017", "Wangjing", "望京", false, 39.995, 116.475},
	{"018", "Jiuxianqiao", "酒仙桥", false, 39.968, 116.495},
	{"019", "Jiangtai", "将台", true, 39.972, 116.475},
	{"020", "Taiyanggong", "太阳宫", true, 39.972, 116.448},
	{"021", "Shuangjing", "双井", false, 39.893, 116.465},
	{"022", "Jinsong", "劲松", false, 39.883, 116.455},
	{"023", "Panjiayuan", "潘家园", false, 39.872, 116.462},
	{"024", "Fatou", "垡头", false, 39.865, 116.510},
	{"025", "Donghu", "东湖", false, 40.008, 116.470},
	{"026", "Capital Airport", "首都机场", false, 40.045, 116.575},
	{"027", "Nanmofang", "南磨房", true, 39.885, 116.490},
	{"028", "Gaobeidian", "高碑店", true, 39.905, 116.520},
	{"029", "Xiaohongmen", "小红门", true, 39.842, 116.462},
	{"030", "Shibalidian", "十八里店", true, 39.850, 116.500},
	{"031", "Wangsiying", "王四营", true, 39.870, 116.545},
	{"032", "Dougezhuang", "豆各庄", true, 39.855, 116.570},
	{"033", "Heizhuanghu", "黑庄户", true, 39.865, 116.595},
	{"034", "Guanzhuang", "管庄", true, 39.910, 116.595},
	{"035", "Sanjianfang", "三间房", true, 39.915, 116.560},
	{"036", "Changying", "常营", true, 39.935, 116.600},
	{"037", "Pingfang", "平房", true, 39.940, 116.540},
	{"038", "Dongfeng", "东风", true, 39.950, 116.505},
	{"039", "Dongba", "东坝", true, 39.975, 116.560},
	{"040", "Jinzhan", "金盏", true, 40.010, 116.595},
	{"041", "Laiguangying", "来广营", true, 40.028, 116.455},
	{"042", "Cuigezhuang", "崔各庄", true, 40.025, 116.520},
	{"043", "Sunhe", "孙河", true, 40.060, 116.520},
}

// The owners of covers. Which company owns which covers is plausible, not researched.
var demoOwners = []Department{
	{ID: "dept-power", Name: "Chaoyang Power Supply Co.", NameZH: "国网北京市电力公司朝阳供电公司", Owns: []string{"0105"}},
	{ID: "dept-water", Name: "Beijing Drainage Group / Beijing Waterworks Group", NameZH: "北京排水集团/北京市自来水集团", Owns: []string{"0101", "0102", "0103", "0104", "0127"}},
	{ID: "dept-telecom", Name: "Telecom carriers (Unicom, Telecom, Mobile)", NameZH: "通信运营商（联通、电信、移动）", Owns: []string{"0107", "0109"}},
	{ID: "dept-heat", Name: "Beijing District Heating Group", NameZH: "北京市热力集团", Owns: []string{"0110"}},
	{ID: "dept-gas", Name: "Beijing Gas Group", NameZH: "北京市燃气集团", Owns: []string{"0111"}},
	{ID: "dept-lighting", Name: "Beijing Urban Lighting Management Center", NameZH: "北京市城市照明管理中心", Owns: []string{"0106"}},
	{ID: "dept-cable", Name: "Beijing Gehua CATV Network", NameZH: "北京歌华有线电视网络股份有限公司", Owns: []string{"0108"}},
	{ID: "dept-police", Name: "Beijing Public Security Bureau, Chaoyang Branch", NameZH: "北京市公安局朝阳分局", Owns: []string{"0112"}},
	{ID: "dept-citymgmt", Name: "Chaoyang City Management Committee (ownerless covers)", NameZH: "朝阳区城市管理委员会", Owns: []string{"0114"}},
	// Maintains the sensing network (edge boxes and cameras): device-fault cases (taxonomy event 0601).
	{ID: "dept-maintenance", Name: "Chaoyang Grid Sensing Maintenance Team", NameZH: "朝阳区网格感知设备运维中心"},
}

// demoCoverTypes are the cover types generated, with relative frequencies.
var demoCoverTypes = []struct {
	code, name, owner string
	weight            int
}{
	{"0101", "上水井盖 water supply cover", "dept-water", 14},
	{"0102", "污水井盖 sewage cover", "dept-water", 18},
	{"0103", "雨水井盖 storm water cover", "dept-water", 13},
	{"0104", "雨水箅子 storm grate", "dept-water", 9},
	{"0105", "电力井盖 power cover", "dept-power", 12},
	{"0106", "路灯井盖 street light cover", "dept-lighting", 5},
	{"0107", "通讯井盖 telecom cover", "dept-telecom", 12},
	{"0108", "电视井盖 cable TV cover", "dept-cable", 3},
	{"0109", "网络井盖 network cover", "dept-telecom", 2},
	{"0110", "热力井盖 heating cover", "dept-heat", 6},
	{"0111", "燃气井盖 gas cover", "dept-gas", 4},
	{"0112", "公安井盖 police cover", "dept-police", 1},
	{"0114", "无主井盖 ownerless cover", "dept-citymgmt", 1},
	{"0127", "中水井盖 reclaimed water cover", "dept-water", 1},
}

const demoCovers = 30000

// Area classes by distance from the CBD/Sanlitun core, in metres; covers per cell by class.
var (
	demoCoreLat, demoCoreLon = 39.918, 116.455
	demoClassA, demoClassB   = 4500.0, 10000.0
	demoCoverWeight          = map[string]float64{"A": 4, "B": 2, "C": 1}
)

// splitmix64 is a small generator whose sequence is fixed by its definition, not by a library version.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a number in [0, 1).
func (s *splitmix64) float() float64 { return float64(s.next()>>11) / (1 << 53) }

// hashFloat is a number in [-1, 1) fixed by its arguments, for jittering shared vertices.
func hashFloat(i, j, k int) float64 {
	s := splitmix64(demoSeed ^ uint64(i)<<40 ^ uint64(j)<<20 ^ uint64(k))
	return s.float()*2 - 1
}

func generateDemo() ([]Department, []Street, []Cell, []Facility) {
	var depts []Department
	for _, d := range demoOwners {
		d.Kind = KindOwner
		depts = append(depts, d)
	}
	streets := make([]Street, len(demoStreets))
	for i, s := range demoStreets {
		code := demoCounty + s.seq
		office := Department{ID: "street-" + code, Kind: KindStreet}
		if s.township {
			office.Name, office.NameZH = s.name+" Area Office", s.zh+"地区办事处"
			streets[i] = Street{Code: code, Name: s.name + " Area", NameZH: s.zh + "地区", OfficeDept: office.ID}
		} else {
			office.Name, office.NameZH = s.name+" Subdistrict Office", s.zh+"街道办事处"
			streets[i] = Street{Code: code, Name: s.name + " Subdistrict", NameZH: s.zh + "街道", OfficeDept: office.ID}
		}
		depts = append(depts, office)
	}
	cells := demoGrid(streets)
	return depts, streets, cells, demoFacilities(cells)
}

// Local metres per degree at the district's latitude, for Voronoi and area-class distances.
var (
	demoMLat = EarthRadius * degToRad
	demoMLon = demoMLat * math.Cos((demoSouth+demoNorth)/2*degToRad)
)

func demoGrid(streets []Street) []Cell {
	dx, dy := (demoEast-demoWest)/demoCols, (demoNorth-demoSouth)/demoRows
	// Shared vertices, so that the cells tile exactly; those on the frame stay put.
	vertex := func(i, j int) [2]float64 {
		x, y := float64(i), float64(j)
		if i > 0 && i < demoCols && j > 0 && j < demoRows {
			x += demoJitter * hashFloat(i, j, 0)
			y += demoJitter * hashFloat(i, j, 1)
		}
		return [2]float64{demoWest + x*dx, demoSouth + y*dy}
	}

	type gridCell struct {
		i, j     int
		ring     [][2]float64
		lat, lon float64 // centroid of the vertices
		score    float64
	}
	all := make([]gridCell, 0, demoCols*demoRows)
	midLon, midLat := (demoWest+demoEast)/2, (demoSouth+demoNorth)/2
	for j := 0; j < demoRows; j++ {
		for i := 0; i < demoCols; i++ {
			// Counter-clockwise, as GeoJSON wants outer rings.
			ring := [][2]float64{vertex(i, j), vertex(i+1, j), vertex(i+1, j+1), vertex(i, j+1)}
			var lon, lat float64
			for _, p := range ring {
				lon, lat = lon+p[0]/4, lat+p[1]/4
			}
			u, v := (lon-midLon)/(demoEast-midLon), (lat-midLat)/(demoNorth-midLat)
			theta := math.Atan2(v, u)
			norm := math.Cbrt(math.Abs(u*u*u) + math.Abs(v*v*v))
			score := norm * (1 + 0.05*math.Sin(3*theta+0.7) + 0.03*math.Sin(5*theta+2.1))
			all = append(all, gridCell{i: i, j: j, ring: ring, lat: lat, lon: lon, score: score})
		}
	}
	// The outline's norm grows along every ray from the middle, so the kept cells form one piece.
	slices.SortStableFunc(all, func(a, b gridCell) int { return cmp.Compare(a.score, b.score) })
	kept := all[:demoCells]
	// Number communities and cells from the north-west, row by row.
	slices.SortFunc(kept, func(a, b gridCell) int {
		return cmp.Or(cmp.Compare(b.j, a.j), cmp.Compare(a.i, b.i))
	})

	type block struct{ street, bx, by int }
	community := map[block]int{}
	communities := make([]int, len(streets))
	seqs := map[block]int{}
	cells := make([]Cell, 0, len(kept))
	for _, g := range kept {
		best, bestD := 0, math.Inf(1)
		for s, st := range demoStreets {
			ey, ex := (g.lat-st.lat)*demoMLat, (g.lon-st.lon)*demoMLon
			if d := ex*ex + ey*ey; d < bestD {
				best, bestD = s, d
			}
		}
		b := block{best, g.i / demoCommunityBlock, g.j / demoCommunityBlock}
		c, ok := community[b]
		if !ok {
			communities[best]++
			c = communities[best]
			community[b] = c
		}
		seqs[b]++
		ey, ex := (g.lat-demoCoreLat)*demoMLat, (g.lon-demoCoreLon)*demoMLon
		class := "C"
		switch d := math.Hypot(ex, ey); {
		case d < demoClassA:
			class = "A"
		case d < demoClassB:
			class = "B"
		}
		comm := pad(c, 3)
		cells = append(cells, Cell{
			Code:      streets[best].Code + comm + pad(seqs[b], 3),
			Street:    streets[best].Code,
			Community: comm,
			AreaClass: class,
			Polygon:   g.ring,
		})
	}
	slices.SortFunc(cells, func(a, b Cell) int { return cmp.Compare(a.Code, b.Code) })
	return cells
}

func demoFacilities(cells []Cell) []Facility {
	rng := splitmix64(demoSeed)
	facs := make([]Facility, 0, len(demoAnchors)+demoCovers)
	anchor := map[string]bool{}
	for _, a := range demoAnchors {
		facs = append(facs, a)
		anchor[a.ID] = true
	}

	cum := make([]float64, len(cells))
	var total float64
	for i, c := range cells {
		total += demoCoverWeight[c.AreaClass]
		cum[i] = total
	}
	typeCum := make([]int, len(demoCoverTypes))
	typeTotal := 0
	for i, t := range demoCoverTypes {
		typeTotal += t.weight
		typeCum[i] = typeTotal
	}
	seq := make([]int, len(demoCoverTypes))

	for range demoCovers {
		ci, _ := slices.BinarySearch(cum, rng.float()*total)
		ci = min(ci, len(cells)-1)
		ring := cells[ci].Polygon
		b := ringBox(ring)
		var lat, lon float64
		for { // the cells are convex quadrilaterals filling most of their box
			// Rounded to about a centimetre, as surveyed.
			lon = math.Round((b.minLon+rng.float()*(b.maxLon-b.minLon))*1e7) / 1e7
			lat = math.Round((b.minLat+rng.float()*(b.maxLat-b.minLat))*1e7) / 1e7
			if inRing(ring, lon, lat) {
				break
			}
		}
		w := int(rng.next() % uint64(typeTotal))
		ti, _ := slices.BinarySearch(typeCum, w+1)
		t := demoCoverTypes[ti]
		var id string
		for { // skip the anchors' sequence numbers
			seq[ti]++
			id = demoCounty + t.code + pad(seq[ti], 6)
			if !anchor[id] {
				break
			}
		}
		facs = append(facs, Facility{
			ID: id, TypeCode: t.code, TypeName: t.name,
			Lat: lat, Lon: lon, OwnerDept: t.owner,
		})
	}
	return facs
}

// pad formats a non-negative n with at least width digits.
func pad(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

#!/usr/bin/env python3
# Copied unchanged (apart from this note) from the shared OneGrid tools, tools/make_grids.py,
# on 2026-11-21, so the project stands alone; the demo map data/shanghai-demo-grids.geojson
# was made by the same tool (--grids 2000, default seed). Used by bench/grid_lookup.py.
"""Make a synthetic, Shanghai-shaped grid hierarchy as GeoJSON.

The city outline and district seeds are rough (approximate centroids of the 16
real districts); streets and grids are Voronoi cells, so the shapes are
plausible but NOT real boundaries. Deterministic for a given --seed.

    python make_grids.py --grids 2000 > shanghai-demo-grids.geojson
    python make_grids.py --grids 50000 > bench-50k-grids.geojson

Every feature has properties: code, name, name_en, level (city|district|street|grid),
parent_code. Codes are hierarchical: SH, SH-CN, SH-CN-03, SH-CN-03-017.
Needs shapely >= 2.
"""
import argparse
import json
import random
import sys

from shapely import voronoi_polygons
from shapely.geometry import MultiPoint, Point, Polygon, mapping
from shapely.ops import unary_union

# A coarse outline of mainland Shanghai plus Chongming island (lon, lat).
MAINLAND = [
    (121.10, 30.69), (121.27, 30.68), (121.50, 30.80), (121.78, 30.85), (121.97, 30.88),
    (121.98, 31.02), (121.90, 31.20), (121.80, 31.33), (121.61, 31.45), (121.44, 31.52),
    (121.30, 31.50), (121.15, 31.44), (121.10, 31.30), (120.86, 31.20), (120.87, 31.00),
    (120.95, 30.90),
]
CHONGMING = [
    (121.20, 31.78), (121.40, 31.62), (121.62, 31.52), (121.95, 31.47), (121.99, 31.52),
    (121.70, 31.66), (121.45, 31.76), (121.28, 31.86),
]

# code, Chinese name, English name, approximate centroid, share of streets
DISTRICTS = [
    ("HP", "黄浦区", "Huangpu", (121.484, 31.228), 10),
    ("XH", "徐汇区", "Xuhui", (121.437, 31.180), 13),
    ("CN", "长宁区", "Changning", (121.405, 31.215), 10),
    ("JA", "静安区", "Jing'an", (121.455, 31.262), 14),
    ("PT", "普陀区", "Putuo", (121.397, 31.255), 10),
    ("HK", "虹口区", "Hongkou", (121.497, 31.270), 8),
    ("YP", "杨浦区", "Yangpu", (121.530, 31.275), 12),
    ("MH", "闵行区", "Minhang", (121.390, 31.100), 14),
    ("BS", "宝山区", "Baoshan", (121.430, 31.390), 12),
    ("JD", "嘉定区", "Jiading", (121.250, 31.360), 12),
    ("PD", "浦东新区", "Pudong", (121.650, 31.170), 36),
    ("JS", "金山区", "Jinshan", (121.230, 30.800), 11),
    ("SJ", "松江区", "Songjiang", (121.220, 31.030), 17),
    ("QP", "青浦区", "Qingpu", (121.050, 31.130), 11),
    ("FX", "奉贤区", "Fengxian", (121.550, 30.930), 12),
    ("CM", "崇明区", "Chongming", (121.600, 31.620), 18),
]

# Street names that appear in the source material or are well known; the rest
# are numbered.
KNOWN_STREETS = {
    "CN": [("江苏路街道", "Jiangsu Road"), ("华阳路街道", "Huayang Road"), ("新华路街道", "Xinhua Road"),
           ("天山路街道", "Tianshan Road"), ("虹桥街道", "Hongqiao"), ("程家桥街道", "Chengjiaqiao"),
           ("北新泾街道", "Beixinjing"), ("新泾镇", "Xinjing Town"), ("仙霞新村街道", "Xianxia Xincun"),
           ("周家桥街道", "Zhoujiaqiao")],
    "PD": [("花木街道", "Huamu"), ("周家渡街道", "Zhoujiadu"), ("北蔡镇", "Beicai Town"),
           ("陆家嘴街道", "Lujiazui"), ("潍坊新村街道", "Weifang Xincun"), ("洋泾街道", "Yangjing"),
           ("塘桥街道", "Tangqiao"), ("上钢新村街道", "Shanggang Xincun"), ("南码头路街道", "Nanmatou Road"),
           ("沪东新村街道", "Hudong Xincun"), ("金杨新村街道", "Jinyang Xincun"), ("浦兴路街道", "Puxing Road"),
           ("东明路街道", "Dongming Road"), ("张江镇", "Zhangjiang Town"), ("川沙新镇", "Chuansha Town"),
           ("唐镇", "Tang Town"), ("高桥镇", "Gaoqiao Town"), ("惠南镇", "Huinan Town")],
    "XH": [("徐家汇街道", "Xujiahui"), ("天平路街道", "Tianping Road"), ("湖南路街道", "Hunan Road"),
           ("枫林路街道", "Fenglin Road"), ("康健新村街道", "Kangjian Xincun"), ("龙华街道", "Longhua"),
           ("田林街道", "Tianlin"), ("虹梅路街道", "Hongmei Road"), ("斜土路街道", "Xietu Road"),
           ("长桥街道", "Changqiao"), ("漕河泾街道", "Caohejing"), ("凌云路街道", "Lingyun Road"),
           ("华泾镇", "Huajing Town")],
    "HP": [("南京东路街道", "East Nanjing Road"), ("外滩街道", "The Bund"), ("半淞园路街道", "Bansongyuan Road"),
           ("小东门街道", "Xiaodongmen"), ("豫园街道", "Yuyuan"), ("老西门街道", "Laoximen"),
           ("五里桥街道", "Wuliqiao"), ("打浦桥街道", "Dapuqiao"), ("淮海中路街道", "Middle Huaihai Road"),
           ("瑞金二路街道", "Ruijin No.2 Road")],
    "PT": [("真如镇街道", "Zhenru Town"), ("长征镇", "Changzheng Town"), ("桃浦镇", "Taopu Town"),
           ("万里街道", "Wanli"), ("曹杨新村街道", "Caoyang Xincun"), ("长风新村街道", "Changfeng Xincun"),
           ("宜川路街道", "Yichuan Road"), ("甘泉路街道", "Ganquan Road"), ("石泉路街道", "Shiquan Road"),
           ("长寿路街道", "Changshou Road")],
}


def cells(region, n, rng):
    """Split a region into about n Voronoi cells seeded by random points inside it."""
    if n <= 1:
        return [region]
    minx, miny, maxx, maxy = region.bounds
    pts = []
    tries = 0
    while len(pts) < n and tries < n * 200:
        tries += 1
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if region.contains(p):
            pts.append(p)
    if len(pts) < 2:
        return [region]
    out = []
    for cell in voronoi_polygons(MultiPoint(pts), extend_to=region).geoms:
        piece = cell.intersection(region)
        if not piece.is_empty and piece.area > 0:
            if piece.geom_type == "MultiPolygon":
                piece = max(piece.geoms, key=lambda g: g.area)
            if piece.geom_type == "Polygon":
                out.append(piece)
    # Sort north-west to south-east so numbering reads naturally.
    out.sort(key=lambda g: (-round(g.centroid.y, 3), g.centroid.x))
    return out


def rounded(geom):
    m = mapping(geom)
    m["coordinates"] = [[[round(x, 6), round(y, 6)] for x, y in ring] for ring in m["coordinates"]]
    return m


def feature(code, name, name_en, level, parent, geom):
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "name_en": name_en, "level": level, "parent_code": parent},
        "geometry": rounded(geom),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", type=int, default=2000, help="about how many grid cells in all")
    ap.add_argument("--seed", type=int, default=20201121)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    mainland, island = Polygon(MAINLAND), Polygon(CHONGMING)
    city = unary_union([mainland, island])
    features = [feature("SH", "上海市", "Shanghai", "city", None, city.convex_hull)]
    # City feature is the hull, for display only; districts carry the real partition.
    features[0]["geometry"] = mapping(city)
    features[0]["geometry"] = json.loads(json.dumps(features[0]["geometry"]))

    main_seeds = [d for d in DISTRICTS if d[0] != "CM"]
    vor = voronoi_polygons(MultiPoint([Point(*d[3]) for d in main_seeds]), extend_to=mainland)
    district_shapes = {}
    for cell in vor.geoms:
        piece = cell.intersection(mainland)
        for d in main_seeds:
            if piece.contains(Point(*d[3])):
                district_shapes[d[0]] = piece
    district_shapes["CM"] = island

    total_streets = sum(d[4] for d in DISTRICTS)
    grids_per_street = max(1, round(args.grids / total_streets))

    for code, name, name_en, _, n_streets in DISTRICTS:
        shape = district_shapes[code]
        if shape.geom_type == "MultiPolygon":
            shape = max(shape.geoms, key=lambda g: g.area)
        dcode = f"SH-{code}"
        features.append(feature(dcode, name, name_en, "district", "SH", shape))
        known = KNOWN_STREETS.get(code, [])
        for i, street in enumerate(cells(shape, n_streets, rng), start=1):
            scode = f"{dcode}-{i:02d}"
            if i <= len(known):
                sname, sname_en = known[i - 1]
            else:
                sname, sname_en = f"{name}第{i}街镇", f"{name_en} Street {i}"
            features.append(feature(scode, sname, sname_en, "street", dcode, street))
            for j, grid in enumerate(cells(street, grids_per_street, rng), start=1):
                gcode = f"{scode}-{j:03d}"
                features.append(feature(gcode, f"{sname}第{j}网格", f"{sname_en} Grid {j}", "grid", scode, grid))

    json.dump({"type": "FeatureCollection", "features": features}, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    counts = {}
    for f in features:
        counts[f["properties"]["level"]] = counts.get(f["properties"]["level"], 0) + 1
    print(counts, file=sys.stderr)


if __name__ == "__main__":
    main()

"""Downloads: CSV tables and PNG images read back to the numbers they came from."""

import csv
import io

import cv2
import numpy as np
import pytest

from attnviz.analysis.forward import click_to_image_point, parse_image_point
from attnviz.viz.exports import grid_csv, png_bytes, vector_csv


def test_grid_csv_round_trips_every_cell_at_full_precision():
    values = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    rows = list(csv.DictReader(io.StringIO(grid_csv(values, "S_row_5"))))
    assert len(rows) == 12 and list(rows[0]) == ["feature_row", "feature_col", "index", "S_row_5"]
    for row in rows:
        r, c, i = int(row["feature_row"]), int(row["feature_col"]), int(row["index"])
        assert i == r * 4 + c and float(row["S_row_5"]) == float(values[r, c])


def test_vector_csv_columns_and_length_check():
    text = vector_csv({"weight": np.array([0.25, 0.5]), "avg": np.array([1.0, -2.0])})
    assert text == "channel,weight,avg\n0,0.25,1.0\n1,0.5,-2.0\n"
    with pytest.raises(ValueError):
        vector_csv({"a": np.zeros(2), "b": np.zeros(3)})


def test_png_bytes_decode_to_the_same_rgb_image():
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(png_bytes(image), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, image)


def test_clicks_and_link_points_map_onto_the_photo():
    # a 480x360 photo shown 240 pixels wide: display coordinates double
    assert click_to_image_point({"x": 60, "y": 45, "width": 240, "height": 180}, (360, 480)) == (120.0, 90.0)
    assert click_to_image_point({"x": 1000, "y": -5, "width": 240, "height": 180}, (360, 480)) == (479.0, 0.0)
    assert click_to_image_point({"x": 1, "y": 1, "width": 0, "height": 180}, (360, 480)) is None
    assert click_to_image_point({"x": "nan", "y": 1, "width": 240, "height": 180}, (360, 480)) is None
    assert parse_image_point("100", "200", (360, 480)) == (100.0, 200.0)
    for x, y in (("480", "10"), ("-1", "10"), ("abc", "10"), (None, "10"), ("10", "360")):
        assert parse_image_point(x, y, (360, 480)) is None

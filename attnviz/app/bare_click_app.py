"""The floor of a click: a Streamlit script holding only the Position page's image component.

Not imported by anything: `python -m attnviz.app_bench` serves it with `streamlit run` beside app.py and
clicks both, so that the ratio of the two says what the app's own work adds to a bare Streamlit rerun.
The photo has the size of a CamVid sample (360x480), shown at the column's width like the Position page's.
"""

import numpy as np
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

image = np.full((360, 480, 3), 128, dtype=np.uint8)
value = streamlit_image_coordinates(image, key="click", use_column_width="always", cursor="crosshair")
st.markdown(f"Clicked: {value['x'] if value else '-'}, {value['y'] if value else '-'}")

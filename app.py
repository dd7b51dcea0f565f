"""attnviz: interactive attention visualisation. Run: streamlit run app.py"""
import streamlit as st

st.set_page_config(page_title="attnviz", layout="wide")
st.title("attnviz")
st.write("Pages for ECA, DANet position and channel attention, flexible attention and a comparison are coming.")

"""The analysis layer: what the pages read, computed from a capture, with no Streamlit.

forward (one forward pass with capture -> Analysis), geometry (photo pixel <-> feature cell), quality
(is a position attention semantic or near), affinity (the PAM class-affinity loss), attribution (Grad-CAM
and Integrated Gradients through captum), metrics and uncertainty (IoU and bootstrap intervals), views (what
a page prints), hover (what the page's script needs to compute S under the cursor) and lecture (the
lecture's steps with this photo's numbers).
"""

// Shared by the page's attention components (prepended to each by attnviz.app.page_script): decoding the
// base64 arrays of attnviz.analysis.hover and picking the largest entries.

function decode(text, Type) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return new Type(bytes.buffer);
}

// the indices of the k largest values, largest first (one pass, a sorted list of k)
function topIndices(values, k) {
  const top = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (top.length === k && v <= values[top[k - 1]]) continue;
    let at = top.length;
    while (at > 0 && values[top[at - 1]] < v) at--;
    top.splice(at, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}

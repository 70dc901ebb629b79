// Small helpers both pages share. A secret typed by the user (an API key, the admin token): kept for this tab's session in
// sessionStorage, or in localStorage only when the user ticks "remember".
export function bindSecret(input, checkbox, name) {
  const saved = localStorage.getItem(name);
  input.value = saved ?? sessionStorage.getItem(name) ?? '';
  checkbox.checked = saved !== null;
  const save = () => {
    const v = input.value.trim();
    sessionStorage.setItem(name, v);
    if (checkbox.checked) localStorage.setItem(name, v);
    else localStorage.removeItem(name);
  };
  input.addEventListener('change', save);
  checkbox.addEventListener('change', save);
  return () => input.value.trim();
}

// The message of an OpenAI-shaped error body, or the HTTP status.
export async function errorMessage(res) {
  try {
    const j = await res.json();
    if (j?.error?.message) return `${res.status}: ${j.error.message}`;
  } catch { /* not JSON */ }
  return `HTTP ${res.status}`;
}

export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

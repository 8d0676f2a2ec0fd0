// One hook for "fetch something for this view": {loading, data, error, reload}. The request is
// aborted when its inputs change or the view goes away, so a slow old answer never overwrites
// a newer one; while reloading, the previous data stays on screen.
import { useCallback, useEffect, useState } from '../preact.js';

// fn(signal) -> Promise of the data; deps: what the request depends on (as for useEffect).
export function useAsync(fn, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const [runs, setRuns] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    fn(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ loading: false, data, error: null }),
      (error) => !ctl.signal.aborted && error.name !== 'AbortError' && setState({ loading: false, data: null, error }),
    );
    return () => ctl.abort();
  }, [...deps, runs]);
  const reload = useCallback(() => setRuns((n) => n + 1), []);
  return { ...state, reload };
}

// Types for `import src from "./tracker.js" with { type: "text" }`: the tracker is browser code imported as text.
declare const source: string;
export default source;

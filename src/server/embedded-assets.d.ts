// Types for files Bun embeds as text (`import x from "…" with { type: "text" }`): the swagger-ui-dist
// files served at /swagger/assets/*, built into the binary rather than read from disk or a CDN.

declare module "swagger-ui-dist/swagger-ui.css" {
  const text: string;
  export default text;
}
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const text: string;
  export default text;
}

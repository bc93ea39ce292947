// Entry of dist/rooms.js: every room's code (editor/<room>.ts and the core it uses), kept out of
// dist/extension.js so that activation neither parses nor runs it. extension.ts requires this
// bundle the first time a room is needed and starts that room (docs/architecture.md, "Loading").
export { activateRecipes as recipes } from './editor/recipes';
export { activateLaunch as launch } from './editor/launch';
export { activateDashboard as dashboard } from './editor/dashboard';
export { activateAllocator as allocator } from './editor/allocator';
export { activateEval as eval } from './editor/eval';
export { activateServe as serve } from './editor/serve';

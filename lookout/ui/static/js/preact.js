// The one import point for Preact + htm, so pages never spell the vendored path.
export {
  h, html, render, Component, createContext, useState, useReducer, useEffect, useLayoutEffect,
  useRef, useMemo, useCallback, useContext,
} from '../vendor/htm-preact-standalone.mjs';

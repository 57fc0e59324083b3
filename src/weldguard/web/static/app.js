/* weldguard page behaviour: small, dependency-free; htmx does the rest. */
(function () {
  "use strict";

  // Selects marked data-autosubmit submit their form on change (non-htmx forms).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      target.form.submit();
    }
  });

  // Filter forms send only the filters in use, so that pushed URLs stay short
  // and match the plain-GET fallback's links.
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (!detail || detail.verb !== "get" || !detail.parameters) {
      return;
    }
    var params = detail.parameters;
    Object.keys(params).forEach(function (name) {
      if (params[name] === "") {
        delete params[name];
      }
    });
  });

  // Leaflet map of an enterprise's sites: markers come from data-markers (JSON).
  function drawSiteMap() {
    var element = document.getElementById("site-map");
    if (!element || typeof window.L === "undefined") {
      return;
    }
    var markers;
    try {
      markers = JSON.parse(element.getAttribute("data-markers") || "[]");
    } catch (e) {
      return;
    }
    if (!markers.length) {
      return;
    }
    var L = window.L;
    var map = L.map(element, { scrollWheelZoom: false });
    L.tileLayer(element.getAttribute("data-tiles") || "https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
      maxZoom: 19,
      attribution: "&copy; OpenStreetMap"
    }).addTo(map);
    var icon = L.divIcon({ className: "site-pin", iconSize: [14, 14] });
    var bounds = [];
    markers.forEach(function (m) {
      var marker = L.marker([m.lat, m.lng], { icon: icon, title: m.name }).addTo(map);
      var popup = document.createElement("div");
      var name = document.createElement("strong");
      name.textContent = m.name;
      popup.appendChild(name);
      if (m.address) {
        popup.appendChild(document.createElement("br"));
        popup.appendChild(document.createTextNode(m.address));
      }
      marker.bindPopup(popup);
      bounds.push([m.lat, m.lng]);
    });
    if (bounds.length === 1) {
      map.setView(bounds[0], 16);
    } else {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawSiteMap);
  } else {
    drawSiteMap();
  }
})();

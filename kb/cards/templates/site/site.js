/* kb cards build: sort and filter the rows of index.html. No dependencies, no network: the
   rows are in the page (rendered by kb), this script only hides and reorders them, so the site
   works from disk (file://) and from any web server. */
(function () {
  "use strict";

  var list = document.getElementById("cards");
  var form = document.getElementById("controls");
  if (!list || !form) {
    return;
  }
  var shown = document.getElementById("shown");
  var none = document.getElementById("none");
  var controls = {
    text: document.getElementById("filter-text"),
    type: document.getElementById("filter-type"),
    from: document.getElementById("filter-year-from"),
    to: document.getElementById("filter-year-to"),
    topic: document.getElementById("filter-topic"),
    sort: document.getElementById("sort")
  };
  var collator = typeof Intl !== "undefined" ? new Intl.Collator(undefined, {sensitivity: "base", numeric: true}) : null;

  // Parts of a row by class name (no descendant selectors: with 30,000 rows they are slow).
  function part(row, name) {
    return row.getElementsByClassName(name)[0] || null;
  }

  function partText(row, name) {
    var element = part(row, name);
    return element ? element.textContent.trim() : "";
  }

  // What each row is filtered and sorted on, read once from the page.
  var rows = Array.prototype.map.call(list.children, function (row, position) {
    var year = parseInt(row.getAttribute("data-year"), 10);
    var topics = part(row, "topics");
    return {
      row: row,
      position: position,
      year: isNaN(year) ? null : year,
      title: partText(row, "headline"),
      type: partText(row, "type"),
      topics: topics ? Array.prototype.map.call(topics.children, function (li) { return li.textContent; }) : [],
      text: null   // the words searched, read on the first search
    };
  });
  var total = rows.length;

  function searchText(entry) {
    if (entry.text === null) {
      entry.text = [partText(entry.row, "card"), entry.type, partText(entry.row, "status")]
        .concat(entry.topics).join(" ").replace(/\s+/g, " ").toLowerCase();
    }
    return entry.text;
  }

  function value(control) {
    return control ? control.value.trim() : "";
  }

  function yearValue(control) {
    var year = parseInt(value(control), 10);
    return isNaN(year) ? null : year;
  }

  function compareText(a, b) {
    return collator ? collator.compare(a, b) : (a < b ? -1 : a > b ? 1 : 0);
  }

  function compareYear(a, b, newestFirst) {
    if (a.year === b.year) {
      return 0;
    }
    if (a.year === null) {
      return 1;   // studies without a year last
    }
    if (b.year === null) {
      return -1;
    }
    return newestFirst ? b.year - a.year : a.year - b.year;
  }

  var comparators = {
    "year-desc": function (a, b) { return compareYear(a, b, true); },
    "year-asc": function (a, b) { return compareYear(a, b, false); },
    "title": function (a, b) { return compareText(a.title, b.title); },
    "type": function (a, b) { return compareText(a.type, b.type) || compareYear(a, b, true); }
  };

  function sortRows() {
    var compare = comparators[value(controls.sort)] || comparators["year-desc"];
    var ordered = rows.slice().sort(function (a, b) {
      return compare(a, b) || a.position - b.position;
    });
    var fragment = document.createDocumentFragment();
    ordered.forEach(function (entry) {
      fragment.appendChild(entry.row);
    });
    list.appendChild(fragment);
  }

  function matches(entry, filter) {
    if (filter.type && entry.type !== filter.type) {
      return false;
    }
    if (filter.topic && entry.topics.indexOf(filter.topic) < 0) {
      return false;
    }
    if (filter.from !== null && (entry.year === null || entry.year < filter.from)) {
      return false;
    }
    if (filter.to !== null && (entry.year === null || entry.year > filter.to)) {
      return false;
    }
    return !filter.words.length || filter.words.every(function (word) {
      return searchText(entry).indexOf(word) >= 0;
    });
  }

  function applyFilters() {
    var filter = {
      words: value(controls.text).toLowerCase().split(/\s+/).filter(Boolean),
      type: value(controls.type),
      topic: value(controls.topic),
      from: yearValue(controls.from),
      to: yearValue(controls.to)
    };
    var count = 0;
    rows.forEach(function (entry) {
      var visible = matches(entry, filter);
      if (entry.row.hidden === visible) {
        entry.row.hidden = !visible;
      }
      count += visible ? 1 : 0;
    });
    if (shown) {
      shown.textContent = count === total ? total + (total === 1 ? " card" : " cards")
        : "Showing " + count + " of " + total + (total === 1 ? " card" : " cards");
    }
    if (none) {
      none.hidden = count > 0;
    }
  }

  var pending = null;
  function applySoon() {
    if (pending !== null) {
      clearTimeout(pending);
    }
    pending = setTimeout(function () {
      pending = null;
      applyFilters();
    }, total > 2000 ? 150 : 0);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    applyFilters();
  });
  form.addEventListener("input", function (event) {
    if (event.target !== controls.sort) {
      applySoon();
    }
  });
  form.addEventListener("change", function (event) {
    if (event.target === controls.sort) {
      sortRows();
    } else {
      applySoon();
    }
  });
  form.addEventListener("reset", function () {
    // The form's values are reset after this event: apply them on the next turn.
    setTimeout(function () {
      sortRows();
      applyFilters();
    }, 0);
  });

  form.hidden = false;
  // A page restored by the back button keeps its form values: show what they select.
  if (value(controls.sort) !== "year-desc") {
    sortRows();
  }
  applyFilters();
}());
